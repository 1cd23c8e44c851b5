package server

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

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

// Per-value bounds of a push body: what the decoder may buffer for one value, whitespace and
// separators before it included. A sample within the sample rules (32 labels of 128 + 1,024 bytes)
// is far below its bound, even written with escapes.
const (
	maxSampleBytes    = 256 << 10
	maxStatusBytes    = 8 << 10
	maxPushFieldBytes = 1 << 10 // a member name, collected_at, the brackets
)

// pushLimits are the decoder's bounds; now and retention bound the sample timestamps; deadline
// (zero for none) bounds the time spent reading the body.
type pushLimits struct {
	maxSamples int
	now        time.Time
	retention  time.Duration
	deadline   time.Time
	// charge takes n more decompressed bytes of the server's push memory budget, false when the
	// budget cannot hold them; nil charges nothing.
	charge func(n int64) bool
}

// decodePush reads and validates a whole push body from a stream (the body itself is never
// buffered). Each value is bounded before it is read (see pushReader.bound), so the decoder never
// holds more than one bounded value, and its work is linear in the body's size. The push is
// refused whole at its first fault, in the order a reader meets them: the body's structure first
// (syntax, unknown or duplicate fields at any depth, caps, gzip, wherever they are), then the
// push's own fields, then the samples by index, each by its first fault (UTF-8, types, rules), the
// index in the message.
func decodePush(r io.Reader, lim pushLimits) (*api.PushRequest, *httpError) {
	body := newPushReader(r, lim.deadline)
	body.charge = lim.charge
	// UTF-8 is checked by the body reader, which tells which sample it is in.
	dec := jsontext.NewDecoder(body, jsontext.AllowInvalidUTF8(true))
	body.bound(dec.InputOffset(), maxPushFieldBytes, "the push body")
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, bodyFailure(err, "")
	}
	if tok.Kind() != '{' {
		return nil, newError(http.StatusBadRequest, codeMalformedJSON, "the push body must be a JSON object")
	}
	var (
		req   api.PushRequest
		fault *sampleFault
	)
	for {
		body.bound(dec.InputOffset(), maxPushFieldBytes, "the push body")
		if dec.PeekKind() == '}' {
			break
		}
		tok, err := dec.ReadToken()
		if err != nil {
			return nil, bodyFailure(err, "")
		}
		key := tok.String()
		switch key {
		case "collected_at":
			err = decodeField(dec, body, &req.CollectedAt, key, maxPushFieldBytes)
		case "snapshot":
			err = decodeField(dec, body, &req.Snapshot, key, api.MaxSnapshotBytes)
		case "status":
			err = decodeField(dec, body, &req.Status, key, maxStatusBytes)
		case "metrics":
			req.Metrics, fault, err = decodeSamples(dec, body, lim)
		case "by_id":
			req.ByID, err = decodeByID(dec, body, lim.maxSamples)
		default:
			return nil, newError(http.StatusBadRequest, codeMalformedJSON, "unknown field %q", truncate(key, 40))
		}
		if err != nil {
			return nil, bodyFailure(err, key)
		}
	}
	if _, err := dec.ReadToken(); err != nil { // the closing '}'
		return nil, bodyFailure(err, "")
	}
	body.bound(dec.InputOffset(), maxPushFieldBytes, "the push body")
	if _, err := dec.ReadToken(); err != io.EOF {
		var rf readFailure
		if errors.As(err, &rf) {
			return nil, bodyFailure(err, "")
		}
		return nil, newError(http.StatusBadRequest, codeMalformedJSON, "unexpected data after the JSON object")
	}
	if req.CollectedAt.IsZero() {
		return nil, newError(http.StatusBadRequest, codeValidation, "collected_at is required")
	}
	if req.Samples() == 0 {
		return nil, newError(http.StatusBadRequest, codeEmptyBatch, "the push holds no samples (metrics and by_id are missing or empty)")
	}
	if req.Samples() > lim.maxSamples {
		return nil, newError(http.StatusRequestEntityTooLarge, codePayloadTooLarge, "the push holds more than %d samples", lim.maxSamples)
	}
	if req.Status != nil {
		if err := checkStatus(req.Status); err != nil {
			return nil, err
		}
	}
	if req.Snapshot != nil {
		if err := checkSnapshot(req.Snapshot); err != nil {
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
	if err := checkByID(req.ByID, req.CollectedAt, lim); err != nil {
		return nil, err
	}
	return &req, nil
}

// maxNumberBytes bounds one number of by_id, whitespace and the separator before it included.
const maxNumberBytes = 64

// decodeByID decodes the by_id object, its columns read number by number, each bounded, each
// column at most maxSamples long.
func decodeByID(dec *jsontext.Decoder, body *pushReader, maxSamples int) (*api.SeriesSamples, error) {
	body.bound(dec.InputOffset(), maxPushFieldBytes, "by_id")
	if present, err := openValue(dec, '{', "by_id must be an object of series_ids, values and timestamps_ms"); !present || err != nil {
		return nil, err
	}
	var by api.SeriesSamples
	for {
		body.bound(dec.InputOffset(), maxPushFieldBytes, "by_id")
		if dec.PeekKind() == '}' {
			break
		}
		tok, err := dec.ReadToken()
		if err != nil {
			return nil, err
		}
		switch key := tok.String(); key {
		case "series_ids":
			by.SeriesIDs, err = decodeNumbers(dec, body, "by_id.series_ids", maxSamples, wholeNumber)
		case "values":
			by.Values, err = decodeNumbers(dec, body, "by_id.values", maxSamples, finiteNumber)
		case "timestamps_ms":
			by.TimestampsMS, err = decodeNumbers(dec, body, "by_id.timestamps_ms", maxSamples, wholeNumber)
		default:
			return nil, newError(http.StatusBadRequest, codeMalformedJSON, "by_id: unknown field %q", truncate(key, 40))
		}
		if err != nil {
			return nil, err
		}
	}
	if _, err := dec.ReadToken(); err != nil { // '}'
		return nil, err
	}
	return &by, nil
}

func wholeNumber(tok jsontext.Token) (int64, error) {
	v, err := tok.Int()
	if err != nil {
		return 0, errors.New("a whole number in the int64 range")
	}
	return v, nil
}

func finiteNumber(tok jsontext.Token) (float64, error) {
	v, err := tok.Float()
	if err != nil {
		return 0, errors.New("a finite number")
	}
	return v, nil
}

// decodeNumbers reads a JSON array of numbers (null is empty), at most max of them.
func decodeNumbers[T int64 | float64](dec *jsontext.Decoder, body *pushReader, what string, max int,
	parse func(jsontext.Token) (T, error)) ([]T, error) {
	body.bound(dec.InputOffset(), maxNumberBytes, what)
	if present, err := openValue(dec, '[', what+" must be an array of numbers"); !present || err != nil {
		return nil, err
	}
	var out []T
	for i := 0; ; i++ {
		body.bound(dec.InputOffset(), maxNumberBytes, what)
		if dec.PeekKind() == ']' {
			break
		}
		if len(out) == max {
			return nil, newError(http.StatusRequestEntityTooLarge, codePayloadTooLarge, "the push holds more than %d samples", max)
		}
		tok, err := dec.ReadToken()
		if err != nil {
			return nil, err
		}
		if tok.Kind() != '0' {
			return nil, newError(http.StatusBadRequest, codeMalformedJSON, "%s[%d]: expected a number, got %s", what, i, kindName(tok.Kind()))
		}
		v, err := parse(tok)
		if err != nil {
			return nil, newError(http.StatusBadRequest, codeMalformedJSON, "%s[%d]: expected %s", what, i, err)
		}
		out = append(out, v)
	}
	if _, err := dec.ReadToken(); err != nil { // ']'
		return nil, err
	}
	return out, nil
}

// checkByID applies the rules of samples by id: columns of one length, ids positive, timestamps
// within the accepted range.
func checkByID(by *api.SeriesSamples, collectedAt time.Time, lim pushLimits) *httpError {
	if by == nil {
		return nil
	}
	bad := func(code, format string, args ...any) *httpError {
		return newError(http.StatusBadRequest, code, "by_id"+format, args...)
	}
	n := len(by.SeriesIDs)
	switch {
	case len(by.Values) != n:
		return bad(codeValidation, ": %d series_ids but %d values", n, len(by.Values))
	case len(by.TimestampsMS) != 0 && len(by.TimestampsMS) != n:
		return bad(codeValidation, ": %d series_ids but %d timestamps_ms (give none, or one per sample)", n, len(by.TimestampsMS))
	}
	newest, oldest := lim.now.Add(maxFutureSkew).UnixMilli(), lim.now.Add(-lim.retention).UnixMilli()
	if at := collectedAt.UnixMilli(); len(by.TimestampsMS) == 0 && n > 0 && (at > newest || at < oldest) {
		return bad(codeInvalidSample, ": collected_at %s, the time of its samples, is more than %s in the future or older than the retention (%s)",
			collectedAt.UTC().Format(time.RFC3339), maxFutureSkew, lim.retention)
	}
	for i, id := range by.SeriesIDs {
		if id <= 0 {
			return bad(codeInvalidSample, ".series_ids[%d]: %d is not a series id", i, id)
		}
		if len(by.TimestampsMS) == 0 {
			continue
		}
		switch ts := by.TimestampsMS[i]; {
		case ts > newest:
			return bad(codeInvalidSample, ".timestamps_ms[%d]: %d is more than %s in the future", i, ts, maxFutureSkew)
		case ts < oldest:
			return bad(codeInvalidSample, ".timestamps_ms[%d]: %d is older than the retention (%s)", i, ts, lim.retention)
		}
	}
	return nil
}

func sampleAt(i int) string { return "metrics[" + strconv.Itoa(i) + "]" }

// sampleFault is the first sample that could not be decoded.
type sampleFault struct {
	index int
	err   *httpError
}

// decodeSamples decodes the metrics array, each sample once, straight into its place. A failure
// of the stream itself (syntax, duplicate names, caps, gzip) ends the push at once, as the error.
// A sample's own fault (invalid UTF-8, a wrong type, an unknown field) does not: the first one is
// returned once the rest of the array has been read, so that a later failure of the stream still
// comes first.
func decodeSamples(dec *jsontext.Decoder, body *pushReader, lim pushLimits) ([]api.Sample, *sampleFault, error) {
	if present, err := openValue(dec, '[', "metrics must be an array of samples"); !present || err != nil {
		return nil, nil, err // "metrics": null is an empty batch
	}
	var (
		samples []api.Sample
		fault   *sampleFault
	)
	for i := 0; ; i++ {
		start := dec.InputOffset()
		body.bound(start, maxSampleBytes, sampleAt(i))
		if dec.PeekKind() == ']' {
			break
		}
		if len(samples) == lim.maxSamples {
			return nil, nil, newError(http.StatusRequestEntityTooLarge, codePayloadTooLarge, "the push holds more than %d samples", lim.maxSamples)
		}
		raw, err := dec.ReadValue()
		if err != nil {
			return nil, nil, bodyFailure(err, sampleAt(i))
		}
		samples = append(samples, api.Sample{})
		if fault != nil {
			continue
		}
		// Only the body's first invalid byte can fault a sample: one before this sample has
		// refused the push already (in a field or key of its own) or faulted an earlier sample.
		if body.invalidUTF8Within(start, dec.InputOffset()) {
			fault = &sampleFault{i, newError(http.StatusBadRequest, codeInvalidUTF8, "%s: invalid UTF-8", sampleAt(i))}
		} else if err := json.Unmarshal(raw, &samples[i], strictJSON); err != nil {
			fault = &sampleFault{i, jsonError(err, sampleAt(i))}
			fault.err.code = codeInvalidSample
		}
	}
	if _, err := dec.ReadToken(); err != nil { // ']'
		return nil, nil, err
	}
	return samples, fault, nil
}

// openValue reads the token that opens the next value: present is false for null; anything but
// null or the want kind is refused with mustBe as the message.
func openValue(dec *jsontext.Decoder, want jsontext.Kind, mustBe string) (present bool, err error) {
	tok, err := dec.ReadToken()
	switch {
	case err != nil:
		return false, err
	case tok.Kind() == 'n':
		return false, nil
	case tok.Kind() != want:
		return false, newError(http.StatusBadRequest, codeMalformedJSON, "%s", mustBe)
	}
	return true, nil
}

// decodeField decodes the next value, at most max bytes, strictly into dst. The push's own fields
// are read raw and checked whole, UTF-8 included: they are few and bounded.
func decodeField(dec *jsontext.Decoder, body *pushReader, dst any, field string, max int64) error {
	body.bound(dec.InputOffset(), max, field)
	raw, err := dec.ReadValue()
	if err != nil {
		return err
	}
	if raw.Kind() == 'n' {
		return nil
	}
	if err := unmarshalStrict(raw, dst, field); err != nil {
		return err
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
		case strings.IndexByte(v, 0) >= 0:
			return fmt.Errorf("label %q value contains a NUL character", k)
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
	case strings.IndexByte(st.Version, 0) >= 0 || strings.IndexByte(st.Hostname, 0) >= 0:
		return bad("version or hostname contains a NUL character")
	}
	return nil
}

// Body reading failures, told apart so that each gets its precise status.
var (
	errDecompressedTooLarge = errors.New("decompressed body too large")
	errValueTooLarge        = errors.New("value too large")
	errBadGzip              = errors.New("invalid gzip stream")
	errDecodeTimeout        = errors.New("push body took too long")
	errPushBusy             = errors.New("push memory budget spent")
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
	}
	// The body readers' own failures, in their own words (not the decoder's wrapping).
	msg := err.Error()
	var rf readFailure
	if errors.As(err, &rf) {
		msg = rf.Error()
	}
	switch {
	case errors.Is(err, errDecompressedTooLarge), errors.Is(err, errValueTooLarge):
		return newError(http.StatusRequestEntityTooLarge, codePayloadTooLarge, "%s", msg)
	case errors.Is(err, errDecodeTimeout):
		return newError(http.StatusRequestTimeout, codeRequestTimeout, "%s", msg)
	case errors.Is(err, errBadGzip):
		return newError(http.StatusBadRequest, codeInvalidGzip, "%s", msg)
	case errors.Is(err, errPushBusy):
		return errPushMemory()
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
		return n, limitError{errDecompressedTooLarge, fmt.Sprintf("decompressed body exceeds %d bytes", c.max)}
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
// and without a copy; it bounds how much of the body the value being read may span (bound), so
// that the decoder never buffers more than one bounded value whatever the body holds; it stops a
// body that takes longer than its deadline; and it marks the failures of the readers below it
// (caps, gzip, network) so that they are told from a sample's own faults.
type pushReader struct {
	r         io.Reader
	read      int64             // bytes passed on so far
	invalidAt int64             // offset of the first byte that is not valid UTF-8, -1 while none
	cut       [utf8.UTFMax]byte // a sequence the end of the last read cut short
	ncut      int
	cutAt     int64 // its offset

	limit    int64  // offset the value being read may not reach
	max      int64  // the value's bound, for the message
	what     string // the value, for the message
	deadline time.Time
	charge   func(n int64) bool
}

func newPushReader(r io.Reader, deadline time.Time) *pushReader {
	return &pushReader{r: r, invalidAt: -1, limit: math.MaxInt64, deadline: deadline}
}

// bound limits the value that starts at offset from (whitespace and separators before it
// included) to max bytes: reading on past it fails with errValueTooLarge. One byte more is let
// through, the one that ends a number.
func (b *pushReader) bound(from, max int64, what string) {
	b.limit, b.max, b.what = from+max+1, max, what
}

func (b *pushReader) Read(p []byte) (int, error) {
	if b.read >= b.limit {
		return 0, readFailure{limitError{errValueTooLarge, fmt.Sprintf("%s exceeds %d bytes", b.what, b.max)}}
	}
	if !b.deadline.IsZero() && time.Now().After(b.deadline) {
		return 0, readFailure{limitError{errDecodeTimeout, "the push body was not read within the time allowed"}}
	}
	if left := b.limit - b.read; int64(len(p)) > left {
		p = p[:left]
	}
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF { // the decoder tests for io.EOF itself
		return 0, readFailure{err} // a cap or the gzip stream: the bytes with it are not passed on
	}
	if b.charge != nil && n > 0 && !b.charge(int64(n)) {
		return 0, readFailure{errPushBusy}
	}
	if b.invalidAt < 0 {
		b.checkUTF8(p[:n], err == io.EOF)
	}
	b.read += int64(n)
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

// limitError is one of the body's limits reached: its message says which, Is its kind.
type limitError struct {
	kind error
	msg  string
}

func (e limitError) Error() string        { return e.msg }
func (e limitError) Is(target error) bool { return target == e.kind }

// readFailure marks an error of the readers below the decoder; it reads as the error it wraps.
type readFailure struct{ err error }

func (e readFailure) Error() string { return e.err.Error() }
func (e readFailure) Unwrap() error { return e.err }
