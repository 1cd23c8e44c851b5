package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/pganalytics/pganalytics/internal/api"
)

// ErrUnreachable marks transport failures: connection refused, DNS, timeouts, TLS. Test with errors.Is.
var ErrUnreachable = errors.New("api unreachable")

// APIError is any non-2xx answer, decoded from {"error":{"code","message"}} when the body has that shape.
type APIError struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration // from Retry-After on 429/503; zero when absent
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("api: %d %s", e.Status, e.Code)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return msg
}

// maxMessageRunes bounds how much of a non-JSON error body lands in APIError.Message.
const maxMessageRunes = 200

// newAPIError decodes a non-2xx answer. A body without the error envelope still yields a useful
// message: the start of the body on one line.
func newAPIError(status int, header http.Header, body []byte, now time.Time) *APIError {
	e := &APIError{Status: status, RetryAfter: ParseRetryAfter(header.Get("Retry-After"), now)}
	var env api.Error
	if json.Unmarshal(body, &env) == nil && (env.Error.Code != "" || env.Error.Message != "") {
		e.Code, e.Message = env.Error.Code, env.Error.Message
	}
	if e.Code == "" {
		e.Code = statusCode(status)
	}
	if e.Message == "" {
		e.Message = oneLine(string(body), maxMessageRunes)
	}
	return e
}

// statusCode turns 503 into "service_unavailable" for answers without a code of their own.
func statusCode(status int) string {
	text := http.StatusText(status)
	if text == "" {
		return "http_" + strconv.Itoa(status)
	}
	return strings.ToLower(strings.ReplaceAll(strings.ReplaceAll(text, " ", "_"), "-", "_"))
}

// oneLine collapses whitespace and control characters and truncates to max runes.
func oneLine(s string, max int) string {
	var b strings.Builder
	space := false
	n := 0
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			space = b.Len() > 0
			continue
		}
		if n >= max {
			b.WriteString("…")
			break
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// maxRetryAfter keeps an absurd Retry-After from parking a caller for days.
const maxRetryAfter = 24 * time.Hour

// ParseRetryAfter reads a Retry-After value: delay seconds or an HTTP date (relative to now). Invalid,
// negative or past values give zero; values are capped at 24h.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(now)
		if d <= 0 {
			return 0
		}
		// HTTP dates have one-second resolution; round up so a caller never retries early.
		d = d.Truncate(time.Second)
		if at.Sub(now) > d {
			d += time.Second
		}
	}
	return min(d, maxRetryAfter)
}
