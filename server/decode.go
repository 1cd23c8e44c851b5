package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
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
	if e := unmarshalStrict(body, dst, ""); e != nil {
		return e
	}
	if path := nulField(reflect.ValueOf(dst), ""); path != "" {
		return newError(http.StatusBadRequest, codeValidation, "%s: contains a NUL character", path)
	}
	return nil
}

// nulField names the first string field of v (by its JSON name) that holds a NUL, which PostgreSQL
// text cannot: such a value is refused here rather than by the database. "" when none does.
func nulField(v reflect.Value, at string) string {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return nulField(v.Elem(), at)
		}
	case reflect.String:
		if strings.IndexByte(v.String(), 0) >= 0 {
			return at
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			if p := nulField(v.Field(i), joinPath(at, name)); p != "" {
				return p
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if p := nulField(v.Index(i), fmt.Sprintf("%s[%d]", at, i)); p != "" {
				return p
			}
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			if p := nulField(it.Key(), at); p != "" {
				return p
			}
			if p := nulField(it.Value(), joinPath(at, it.Key().String())); p != "" {
				return p
			}
		}
	}
	return ""
}

func joinPath(at, name string) string {
	if at == "" {
		return name
	}
	return at + "." + name
}

// strictJSON is how every request body is decoded: unknown fields refused, names matched exactly
// (case included), a name given twice refused at any depth, invalid UTF-8 refused.
var strictJSON = json.RejectUnknownMembers(true)

// unmarshalStrict decodes one JSON value from b into dst, refusing invalid UTF-8, unknown and
// duplicate fields and trailing data. where prefixes messages (e.g. "metrics[3]").
func unmarshalStrict(b []byte, dst any, where string) *httpError {
	if len(bytes.TrimSpace(b)) == 0 {
		return newError(http.StatusBadRequest, codeMalformedJSON, "%srequest body is empty", prefix(where))
	}
	if !utf8.Valid(b) {
		return newError(http.StatusBadRequest, codeInvalidUTF8, "%sinvalid UTF-8", prefix(where))
	}
	if err := json.Unmarshal(b, dst, strictJSON); err != nil {
		return jsonError(err, where)
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
		syn *jsontext.SyntacticError
		sem *json.SemanticError
	)
	switch {
	case errors.As(err, &syn):
		switch {
		case errors.Is(syn.Err, jsontext.ErrDuplicateName):
			return newError(http.StatusBadRequest, codeMalformedJSON, "%sduplicate field %q", prefix(where), truncate(syn.JSONPointer.LastToken(), 40))
		case errors.Is(syn.Err, io.ErrUnexpectedEOF):
			return newError(http.StatusBadRequest, codeMalformedJSON, "%sunexpected end of JSON", prefix(where))
		case strings.HasPrefix(syn.Err.Error(), "unexpected EOF"):
			return newError(http.StatusBadRequest, codeMalformedJSON, "%sunexpected end of JSON", prefix(where))
		}
		return newError(http.StatusBadRequest, codeMalformedJSON, "%smalformed JSON at byte %d: %s", prefix(where), syn.ByteOffset, truncate(syntaxText(syn.Err), 120))
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return newError(http.StatusBadRequest, codeMalformedJSON, "%sunexpected end of JSON", prefix(where))
	case errors.As(err, &sem):
		if errors.Is(sem.Err, json.ErrUnknownName) {
			return newError(http.StatusBadRequest, codeMalformedJSON, "%sunknown field %q", prefix(where), truncate(sem.JSONPointer.LastToken(), 80))
		}
		field := pointerField(sem.JSONPointer)
		if sem.GoType == reflect.TypeFor[time.Time]() && sem.JSONKind == '"' {
			var v string
			_ = json.Unmarshal(sem.JSONValue, &v)
			return newError(http.StatusBadRequest, codeMalformedJSON, "%sinvalid time %q: want RFC 3339 like 2026-02-27T15:00:00Z", prefix(where), truncate(v, 40))
		}
		if sem.JSONKind == '0' && isNumberKind(sem.GoType) {
			return newError(http.StatusBadRequest, codeMalformedJSON, "%s%s: number %s is out of range for %s", prefix(where), field, truncate(string(sem.JSONValue), 40), describeType(sem.GoType))
		}
		return newError(http.StatusBadRequest, codeMalformedJSON, "%s%s: expected %s, got %s", prefix(where), field, describeType(sem.GoType), kindName(sem.JSONKind))
	}
	return newError(http.StatusBadRequest, codeMalformedJSON, "%sinvalid JSON", prefix(where))
}

// nonASCIIChar is how the decoder quotes a character that is not printable ASCII: as much of it as
// it had read, which depends on how the body was cut into reads.
var nonASCIIChar = regexp.MustCompile(`^invalid character '(\\x[89a-fA-F][0-9a-fA-F]|\\[uU][0-9a-fA-F]+|[^\x00-\x7f]+)'`)

// badEscape is how the decoder quotes an invalid escape sequence: as much of it as it had read.
var badEscape = regexp.MustCompile("^invalid escape sequence (`[^`]*`|\"(\\\\.|[^\"\\\\])*\")")

// syntaxText is the decoder's description of a syntax error, the same however the body was read.
func syntaxText(err error) string {
	msg := nonASCIIChar.ReplaceAllString(err.Error(), "invalid non-ASCII character")
	return badEscape.ReplaceAllString(msg, "invalid escape sequence")
}

// pointerField spells a JSON pointer as the fields it names ("/labels/a" is labels.a), "value" for
// the value itself.
func pointerField(p jsontext.Pointer) string {
	var parts []string
	for tok := range p.Tokens() {
		parts = append(parts, truncate(tok, 40))
	}
	if len(parts) == 0 {
		return "value"
	}
	return strings.Join(parts, ".")
}

func kindName(k jsontext.Kind) string {
	switch k {
	case '"':
		return "string"
	case '0':
		return "number"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	case '{':
		return "object"
	case '[':
		return "array"
	}
	return "another type"
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
