package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/server/store"
)

// Error codes of {"error":{"code":…}} (docs/api.md lists them with their statuses).
const (
	codeMalformedJSON        = "malformed_json"
	codeInvalidUTF8          = "invalid_utf8"
	codeInvalidGzip          = "invalid_gzip"
	codeInvalidSample        = "invalid_sample"
	codeEmptyBatch           = "empty_batch"
	codeValidation           = "validation_failed"
	codeInvalidParameter     = "invalid_parameter"
	codeUnauthorized         = "unauthorized"
	codeInvalidToken         = "invalid_token"
	codeTokenExpired         = "token_expired"
	codeTokenRevoked         = "token_revoked"
	codeTokenReused          = "token_reused"
	codeInvalidCredentials   = "invalid_credentials"
	codeInvalidRegistration  = "invalid_registration_secret"
	codeForbidden            = "forbidden"
	codeCORSDenied           = "cors_origin_not_allowed"
	codeNotFound             = "not_found"
	codeMethodNotAllowed     = "method_not_allowed"
	codeConflict             = "conflict"
	codeUnknownSeries        = "unknown_series"
	codePayloadTooLarge      = "payload_too_large"
	codeUnsupportedMediaType = "unsupported_media_type"
	codeRateLimited          = "rate_limited"
	codeInternal             = "internal"
	codeDatabaseUnavailable  = "database_unavailable"
	codeShuttingDown         = "shutting_down"
	codeRequestTimeout       = "request_timeout"
	codeServerBusy           = "server_busy"
)

// httpError is a response-ready failure: status, code and a message safe to show the client.
type httpError struct {
	status  int
	code    string
	message string
}

func (e *httpError) Error() string { return e.code + ": " + e.message }

func newError(status int, code, format string, args ...any) *httpError {
	return &httpError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

// writeJSON encodes v first so that an encoding failure can still become a clean 500.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		writeErr(w, newError(http.StatusInternalServerError, codeInternal, "internal server error"))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func writeErr(w http.ResponseWriter, e *httpError) {
	switch e.status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="pganalytics"`)
	case http.StatusServiceUnavailable:
		if w.Header().Get("Retry-After") == "" {
			w.Header().Set("Retry-After", "5")
		}
	}
	writeJSON(w, e.status, api.Error{Error: api.ErrorDetail{Code: e.code, Message: e.message}})
}

// storeFailure turns a store error into the response: the sentinels into 4xx, a cancelled request
// into nothing useful (the client is gone), anything else into a counted, logged 503 that never
// shows the database's text.
func (s *Server) storeFailure(ctx context.Context, op string, err error) *httpError {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return newError(http.StatusNotFound, codeNotFound, "not found")
	case errors.Is(err, store.ErrConflict):
		return newError(http.StatusConflict, codeConflict, "already exists")
	case errors.Is(err, store.ErrInvalid):
		return newError(http.StatusBadRequest, codeValidation, "the store refused the value")
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return newError(http.StatusServiceUnavailable, codeDatabaseUnavailable, "request cancelled")
	case store.IsClientError(err):
		// Counted apart so that hostile input cannot fire the database-errors alert.
		s.metrics.clientErrors.WithLabelValues(op).Inc()
		s.log.WarnContext(ctx, "database refused the client's value", "op", op, "err", err)
		return newError(http.StatusBadRequest, codeValidation, "the store refused a value of the request")
	}
	s.dbError(ctx, op, err)
	return newError(http.StatusServiceUnavailable, codeDatabaseUnavailable, "database unavailable, retry later")
}
