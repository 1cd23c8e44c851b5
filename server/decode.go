package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"
)

// contentEncoding returns the request's Content-Encoding, lowercased, with identity as "".
func contentEncoding(r *http.Request) string {
	enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	if enc == "identity" {
		return ""
	}
	return enc
}

// decodeBody reads a small JSON request body (capped at max bytes) into dst: exactly one JSON value,
// valid UTF-8, no unknown fields.
func decodeBody(w http.ResponseWriter, r *http.Request, max int64, dst any) *httpError {
	if enc := contentEncoding(r); enc != "" {
		return newError(http.StatusUnsupportedMediaType, codeUnsupportedMediaType, "Content-Encoding %q is not supported here (identity only)", truncate(enc, 32))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return newError(http.StatusRequestEntityTooLarge, codePayloadTooLarge, "request body exceeds %d bytes", max)
		}
		return newError(http.StatusBadRequest, codeMalformedJSON, "could not read the request body")
	}
	return unmarshalStrict(body, dst, "")
}

// unmarshalStrict decodes one JSON value from b into dst, refusing invalid UTF-8, unknown fields and
// trailing data. where prefixes messages (e.g. "metrics[3]").
func unmarshalStrict(b []byte, dst any, where string) *httpError {
	if len(bytes.TrimSpace(b)) == 0 {
		return newError(http.StatusBadRequest, codeMalformedJSON, "%srequest body is empty", prefix(where))
	}
	if !utf8.Valid(b) {
		return newError(http.StatusBadRequest, codeInvalidUTF8, "%sinvalid UTF-8", prefix(where))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err, where)
	}
	if _, err := dec.Token(); err != io.EOF {
		return newError(http.StatusBadRequest, codeMalformedJSON, "%sunexpected data after the JSON value", prefix(where))
	}
	return nil
}

func prefix(where string) string {
	if where == "" {
		return ""
	}
	return where + ": "
}

// jsonError describes a decoding failure precisely without echoing more than a short excerpt.
func jsonError(err error, where string) *httpError {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		tpe *time.ParseError
	)
	switch {
	case errors.As(err, &syn):
		return newError(http.StatusBadRequest, codeMalformedJSON, "%smalformed JSON at byte %d: %s", prefix(where), syn.Offset, strings.TrimPrefix(syn.Error(), "json: "))
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return newError(http.StatusBadRequest, codeMalformedJSON, "%sunexpected end of JSON", prefix(where))
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "value"
		}
		if strings.HasPrefix(typ.Value, "number ") && isNumberKind(typ.Type) {
			return newError(http.StatusBadRequest, codeMalformedJSON, "%s%s: %s is out of range for %s", prefix(where), field, truncate(typ.Value, 40), describeType(typ.Type))
		}
		return newError(http.StatusBadRequest, codeMalformedJSON, "%s%s: expected %s, got %s", prefix(where), field, describeType(typ.Type), truncate(typ.Value, 40))
	case errors.As(err, &tpe):
		return newError(http.StatusBadRequest, codeMalformedJSON, "%sinvalid time %q: want RFC 3339 like 2026-02-27T15:00:00Z", prefix(where), truncate(tpe.Value, 40))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return newError(http.StatusBadRequest, codeMalformedJSON, "%sunknown field %s", prefix(where), truncate(strings.TrimPrefix(err.Error(), "json: unknown field "), 80))
	}
	return newError(http.StatusBadRequest, codeMalformedJSON, "%sinvalid JSON: %s", prefix(where), truncate(strings.TrimPrefix(err.Error(), "json: "), 120))
}

func isNumberKind(t reflect.Type) bool {
	if t == nil {
		return false
	}
	switch t.Kind() {
	case reflect.Float32, reflect.Float64, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

func describeType(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.Float32, reflect.Float64:
		return "a finite number"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Map, reflect.Struct:
		if t == reflect.TypeFor[time.Time]() {
			return "an RFC 3339 time string"
		}
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Pointer:
		return describeType(t.Elem())
	}
	return fmt.Sprintf("a %s", t.Kind())
}
