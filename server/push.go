package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
)

// Sample rules (docs/api.md "Push").
const (
	maxMetricNameBytes = 200
	maxLabels          = 32
	maxLabelNameBytes  = 128
	maxLabelValueBytes = 1024
	maxFutureSkew      = 5 * time.Minute
)

// validMetricName reports whether s matches [a-zA-Z_:][a-zA-Z0-9_:]* (a byte loop: this runs for
// every sample of every push).
func validMetricName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return s != ""
}

// validLabelName reports whether s matches [a-zA-Z_][a-zA-Z0-9_]*.
func validLabelName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return s != ""
}

// pushLimits are the decoder's bounds; now and retention bound the sample timestamps.
type pushLimits struct {
	maxSamples int
	now        time.Time
	retention  time.Duration
}

// decodePush reads and validates a whole push body from a stream (the body itself is never
// buffered). Each sample is read as raw JSON first, so that any failure — syntax, types, UTF-8,
// rules — names its index; the push is refused whole at its first bad sample.
func decodePush(r io.Reader, lim pushLimits) (*api.PushRequest, *httpError) {
	dec := json.NewDecoder(r)
	if err := expectDelim(dec, '{', "the push body must be a JSON object"); err != nil {
		return nil, err
	}
	var req api.PushRequest
	seen := map[string]bool{}
	var samples []json.RawMessage
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, bodyFailure(err, "")
		}
		key, _ := tok.(string)
		if seen[key] {
			return nil, newError(http.StatusBadRequest, codeMalformedJSON, "duplicate field %q", truncate(key, 40))
		}
		seen[key] = true
		switch key {
		case "collected_at":
			err = decodeRaw(dec, &req.CollectedAt, key)
		case "snapshot":
			err = decodeRaw(dec, &req.Snapshot, key)
		case "status":
			err = decodeRaw(dec, &req.Status, key)
		case "metrics":
			samples, err = decodeSamples(dec, lim.maxSamples)
		default:
			return nil, newError(http.StatusBadRequest, codeMalformedJSON, "unknown field %q", truncate(key, 40))
		}
		if err != nil {
			return nil, bodyFailure(err, key)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, bodyFailure(err, "")
	}
	if _, err := dec.Token(); err != io.EOF {
		if err != nil {
			return nil, bodyFailure(err, "")
		}
		return nil, newError(http.StatusBadRequest, codeMalformedJSON, "unexpected data after the JSON object")
	}
	if req.CollectedAt.IsZero() {
		return nil, newError(http.StatusBadRequest, codeValidation, "collected_at is required")
	}
	if len(samples) == 0 {
		return nil, newError(http.StatusBadRequest, codeEmptyBatch, "the push holds no samples (metrics is missing or empty)")
	}
	if req.Status != nil {
		if err := checkStatus(req.Status); err != nil {
			return nil, err
		}
	}
	req.Metrics = make([]api.Sample, len(samples))
	for i, raw := range samples {
		where := fmt.Sprintf("metrics[%d]", i)
		if err := unmarshalStrict(raw, &req.Metrics[i], where); err != nil {
			if err.code == codeMalformedJSON {
				err.code = codeInvalidSample
			}
			return nil, err
		}
		if err := checkSample(&req.Metrics[i], req.CollectedAt, lim); err != nil {
			return nil, newError(http.StatusBadRequest, codeInvalidSample, "%s: %s", where, err)
		}
	}
	return &req, nil
}

// decodeSamples reads the metrics array as raw elements (syntax checked by the decoder).
func decodeSamples(dec *json.Decoder, max int) ([]json.RawMessage, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok == nil {
		return nil, nil // "metrics": null is an empty batch
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, newError(http.StatusBadRequest, codeMalformedJSON, "metrics must be an array of samples")
	}
	var out []json.RawMessage
	for i := 0; dec.More(); i++ {
		if len(out) == max {
			return nil, newError(http.StatusRequestEntityTooLarge, codePayloadTooLarge, "the push holds more than %d samples", max)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, bodyFailure(err, fmt.Sprintf("metrics[%d]", i))
		}
		out = append(out, raw)
	}
	if _, err := dec.Token(); err != nil { // ']'
		return nil, err
	}
	return out, nil
}

// decodeRaw decodes the next value strictly into dst.
func decodeRaw(dec *json.Decoder, dst any, field string) error {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	if bytes.Equal(raw, []byte("null")) {
		return nil
	}
	if err := unmarshalStrict(raw, dst, field); err != nil {
		return err
	}
	return nil
}

func expectDelim(dec *json.Decoder, want json.Delim, msg string) *httpError {
	tok, err := dec.Token()
	if err != nil {
		return bodyFailure(err, "")
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return newError(http.StatusBadRequest, codeMalformedJSON, "%s", msg)
	}
	return nil
}

// checkSample applies the naming, label and value rules and fills a missing timestamp.
func checkSample(s *api.Sample, collectedAt time.Time, lim pushLimits) error {
	switch {
	case s.Name == "":
		return errors.New("name is required")
	case len(s.Name) > maxMetricNameBytes:
		return fmt.Errorf("name longer than %d bytes", maxMetricNameBytes)
	case !validMetricName(s.Name):
		return fmt.Errorf("name %q does not match [a-zA-Z_:][a-zA-Z0-9_:]*", truncate(s.Name, 64))
	case math.IsNaN(s.Value) || math.IsInf(s.Value, 0):
		return errors.New("value must be a finite number")
	case len(s.Labels) > maxLabels:
		return fmt.Errorf("%d labels, at most %d allowed", len(s.Labels), maxLabels)
	}
	for k, v := range s.Labels {
		switch {
		case len(k) > maxLabelNameBytes:
			return fmt.Errorf("label name longer than %d bytes", maxLabelNameBytes)
		case !validLabelName(k):
			return fmt.Errorf("label name %q does not match [a-zA-Z_][a-zA-Z0-9_]*", truncate(k, 64))
		case len(k) >= 2 && k[:2] == "__":
			return fmt.Errorf("label name %q is reserved (leading __)", truncate(k, 64))
		case len(v) > maxLabelValueBytes:
			return fmt.Errorf("label %q value longer than %d bytes", k, maxLabelValueBytes)
		}
	}
	if s.Timestamp.IsZero() {
		s.Timestamp = collectedAt
	}
	switch {
	case s.Timestamp.After(lim.now.Add(maxFutureSkew)):
		return fmt.Errorf("timestamp %s is more than %s in the future", s.Timestamp.UTC().Format(time.RFC3339), maxFutureSkew)
	case s.Timestamp.Before(lim.now.Add(-lim.retention)):
		return fmt.Errorf("timestamp %s is older than the retention (%s)", s.Timestamp.UTC().Format(time.RFC3339), lim.retention)
	}
	return nil
}

func checkStatus(st *api.CollectorStatus) *httpError {
	bad := func(format string, args ...any) *httpError {
		return newError(http.StatusBadRequest, codeValidation, "status: "+format, args...)
	}
	switch {
	case st.BufferUtilization < 0 || st.BufferUtilization > 1:
		return bad("buffer_utilization %g is outside 0..1", st.BufferUtilization)
	case st.Instances < 0 || st.IntervalSeconds < 0 || st.CycleSeconds < 0 ||
		st.BufferDroppedTotal < 0 || st.CollectionFailuresTotal < 0 || st.CollectionsTotal < 0:
		return bad("counts and durations must not be negative")
	case len(st.Version) > 64 || len(st.Hostname) > 253:
		return bad("version or hostname too long")
	}
	return nil
}

// Body reading failures, told apart so that each gets its precise status.
var (
	errDecompressedTooLarge = errors.New("decompressed body too large")
	errBadGzip              = errors.New("invalid gzip stream")
)

// bodyFailure classifies an error met while decoding the push body: a response-ready error as is,
// the body readers' failures (caps, gzip) by their own status, anything else as malformed JSON at
// where.
func bodyFailure(err error, where string) *httpError {
	var (
		he *httpError
		mb *http.MaxBytesError
	)
	switch {
	case errors.As(err, &he):
		return he
	case errors.As(err, &mb):
		return newError(http.StatusRequestEntityTooLarge, codePayloadTooLarge, "push body exceeds %d bytes on the wire", mb.Limit)
	case errors.Is(err, errDecompressedTooLarge):
		return newError(http.StatusRequestEntityTooLarge, codePayloadTooLarge, "%s", err)
	case errors.Is(err, errBadGzip):
		return newError(http.StatusBadRequest, codeInvalidGzip, "%s", err)
	}
	return jsonError(err, where)
}

// capReader fails with errDecompressedTooLarge once more than max bytes have been read, so a gzip
// bomb stops at the cap instead of filling memory.
type capReader struct {
	r    io.Reader
	max  int64
	read int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if left := c.max + 1 - c.read; int64(len(p)) > left {
		p = p[:left]
	}
	n, err := c.r.Read(p)
	c.read += int64(n)
	if c.read > c.max {
		return n, fmt.Errorf("%w: decompressed body exceeds %d bytes", errDecompressedTooLarge, c.max)
	}
	return n, err
}

// gzipErrors tags the gzip reader's own failures (corrupt or truncated stream) so they are not
// mistaken for malformed JSON, while letting the wire cap's error through unchanged.
type gzipErrors struct{ r io.Reader }

func (g gzipErrors) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	if err != nil && err != io.EOF {
		err = tagGzip(err)
	}
	return n, err
}

func tagGzip(err error) error {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return err
	}
	return fmt.Errorf("%w: %v", errBadGzip, err)
}
