package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

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
// buffered). Each sample is decoded once, in place, as the stream goes by. The push is refused
// whole at its first fault, in the order a reader meets them: the body's structure first (syntax,
// unknown or duplicate fields, caps, gzip, wherever they are), then the push's own fields, then
// the samples by index, each by its first fault (UTF-8, types, rules), the index in the message.
func decodePush(r io.Reader, lim pushLimits) (*api.PushRequest, *httpError) {
	body := newPushReader(r)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := expectDelim(dec, '{', "the push body must be a JSON object"); err != nil {
		return nil, err
	}
	var (
		req   api.PushRequest
		seen  pushFields
		fault *sampleFault
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, bodyFailure(err, "")
		}
		key, _ := tok.(string)
		field := pushFieldOf(key)
		if field == 0 {
			return nil, newError(http.StatusBadRequest, codeMalformedJSON, "unknown field %q", truncate(key, 40))
		}
		if seen&field != 0 {
			return nil, newError(http.StatusBadRequest, codeMalformedJSON, "duplicate field %q", truncate(key, 40))
		}
		seen |= field
		switch field {
		case fieldCollectedAt:
			err = decodeRaw(dec, &req.CollectedAt, key)
		case fieldSnapshot:
			err = decodeRaw(dec, &req.Snapshot, key)
		case fieldStatus:
			err = decodeRaw(dec, &req.Status, key)
		case fieldMetrics:
			req.Metrics, fault, err = decodeSamples(dec, body, lim.maxSamples)
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
	if len(req.Metrics) == 0 {
		return nil, newError(http.StatusBadRequest, codeEmptyBatch, "the push holds no samples (metrics is missing or empty)")
	}
	if req.Status != nil {
		if err := checkStatus(req.Status); err != nil {
			return nil, err
		}
	}
	checked := req.Metrics
	if fault != nil {
		checked = checked[:fault.index] // the samples before it still answer for their rules first
	}
	for i := range checked {
		if err := checkSample(&checked[i], req.CollectedAt, lim); err != nil {
			return nil, newError(http.StatusBadRequest, codeInvalidSample, "%s: %s", sampleAt(i), err)
		}
	}
	if fault != nil {
		return nil, fault.err
	}
	return &req, nil
}

// pushFields is a set of the push body's fields, to refuse one given twice.
type pushFields uint8

const (
	fieldCollectedAt pushFields = 1 << iota
	fieldMetrics
	fieldSnapshot
	fieldStatus
)

// pushFieldOf names key's field, 0 for none (keys match exactly, case included).
func pushFieldOf(key string) pushFields {
	switch key {
	case "collected_at":
		return fieldCollectedAt
	case "metrics":
		return fieldMetrics
	case "snapshot":
		return fieldSnapshot
	case "status":
		return fieldStatus
	}
	return 0
}

func sampleAt(i int) string { return "metrics[" + strconv.Itoa(i) + "]" }

// sampleFault is the first sample that could not be decoded.
type sampleFault struct {
	index int
	err   *httpError
}

// decodeSamples decodes the metrics array, each sample once, straight into its place. A failure
// of the stream itself (syntax, caps, gzip) ends the push at once, as the error. A sample's own
// fault (invalid UTF-8, a wrong type, an unknown field) does not: the first one is returned once
// the rest of the array has been read, so that a later failure of the stream still comes first.
func decodeSamples(dec *json.Decoder, body *pushReader, max int) ([]api.Sample, *sampleFault, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, err
	}
	if tok == nil {
		return nil, nil, nil // "metrics": null is an empty batch
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, nil, newError(http.StatusBadRequest, codeMalformedJSON, "metrics must be an array of samples")
	}
	var (
		samples []api.Sample
		fault   *sampleFault
	)
	for i := 0; dec.More(); i++ {
		if len(samples) == max {
			return nil, nil, newError(http.StatusRequestEntityTooLarge, codePayloadTooLarge, "the push holds more than %d samples", max)
		}
		start := dec.InputOffset()
		samples = append(samples, api.Sample{})
		err := dec.Decode(&samples[i])
		if err != nil && endsStream(err) {
			return nil, nil, bodyFailure(err, sampleAt(i))
		}
		if fault != nil {
			continue
		}
		// Only the body's first invalid byte can fault a sample: one before this sample has
		// refused the push already (in a field or key of its own) or faulted an earlier sample.
		switch {
		case body.invalidUTF8Within(start, dec.InputOffset()):
			fault = &sampleFault{i, newError(http.StatusBadRequest, codeInvalidUTF8, "%s: invalid UTF-8", sampleAt(i))}
		case err != nil:
			fault = &sampleFault{i, jsonError(err, sampleAt(i))}
			fault.err.code = codeInvalidSample
		}
	}
	if _, err := dec.Token(); err != nil { // ']'
		return nil, nil, err
	}
	return samples, fault, nil
}

// endsStream tells a failure to read the next value (syntax, truncation, the body reader's own
// failures) from a complete value that would not unmarshal (wrong type, unknown field, bad time),
// after which the decoder reads on.
func endsStream(err error) bool {
	var (
		syn *json.SyntaxError
		rf  readFailure
	)
	return errors.As(err, &syn) || errors.As(err, &rf) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// decodeRaw decodes the next value strictly into dst. The push's own fields are read raw and
// checked whole, UTF-8 included: they are few and small.
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

// pushReader is the push decoder's reader. It finds, as the body goes by, where the body stops
// being valid UTF-8, so that each sample is checked for UTF-8 by its place in the body, in one pass
// and without a copy; and it marks the failures of the readers below it (caps, gzip, network) so
// that endsStream can tell them from a sample's own faults.
type pushReader struct {
	r         io.Reader
	read      int64             // bytes passed on so far
	invalidAt int64             // offset of the first byte that is not valid UTF-8, -1 while none
	cut       [utf8.UTFMax]byte // a sequence the end of the last read cut short
	ncut      int
	cutAt     int64 // its offset
}

func newPushReader(r io.Reader) *pushReader { return &pushReader{r: r, invalidAt: -1} }

func (b *pushReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if b.invalidAt < 0 {
		b.checkUTF8(p[:n], err == io.EOF)
	}
	b.read += int64(n)
	if err != nil && err != io.EOF { // the decoder tests for io.EOF itself
		err = readFailure{err}
	}
	return n, err
}

// invalidUTF8Within reports whether the first invalid byte lies within [from, to) of the body.
// Every byte before to must have been read.
func (b *pushReader) invalidUTF8Within(from, to int64) bool {
	return from <= b.invalidAt && b.invalidAt < to
}

// checkUTF8 follows UTF-8 through p, the bytes at offset b.read, carrying a sequence the end of p
// cuts over to the next read; atEOF says none follows.
func (b *pushReader) checkUTF8(p []byte, atEOF bool) {
	at := b.read
	for b.ncut > 0 && len(p) > 0 && !utf8.FullRune(b.cut[:b.ncut]) {
		b.cut[b.ncut] = p[0]
		b.ncut++
		p, at = p[1:], at+1
	}
	if b.ncut > 0 {
		if !utf8.FullRune(b.cut[:b.ncut]) {
			if atEOF {
				b.invalidAt = b.cutAt
			}
			return
		}
		if r, size := utf8.DecodeRune(b.cut[:b.ncut]); r == utf8.RuneError && size == 1 {
			b.invalidAt = b.cutAt
			return
		}
		b.ncut = 0
	}
	if utf8.Valid(p) {
		return
	}
	i := validUTF8Prefix(p)
	if rest := p[i:]; !utf8.FullRune(rest) && !atEOF {
		b.ncut, b.cutAt = copy(b.cut[:], rest), at+int64(i)
		return
	}
	b.invalidAt = at + int64(i)
}

// validUTF8Prefix returns the length of the longest prefix of p that is valid UTF-8.
func validUTF8Prefix(p []byte) int {
	i := 0
	for i < len(p) {
		if p[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(p[i:])
		if r == utf8.RuneError && size == 1 {
			break
		}
		i += size
	}
	return i
}

// readFailure marks an error of the readers below the decoder; it reads as the error it wraps.
type readFailure struct{ err error }

func (e readFailure) Error() string { return e.err.Error() }
func (e readFailure) Unwrap() error { return e.err }
