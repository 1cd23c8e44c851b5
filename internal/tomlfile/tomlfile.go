// Package tomlfile decodes the project's TOML files strictly: an unknown key or a value of the
// wrong type is refused with the file, line and column, one Error per fault.
package tomlfile

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// BareValueError is what a value type's UnmarshalText returns for a value it refuses when the
// value was not a string: go-toml passes the raw text of a bare integer without its position, so
// Decode looks the value up to name its line.
type BareValueError struct {
	Value string // the raw text, e.g. "30"
	Msg   string
}

func (e *BareValueError) Error() string { return e.Msg }

// Error is one fault of a file, at its line and column when known (0 when not).
type Error struct {
	File   string
	Line   int
	Column int
	Msg    string
}

func (e *Error) Error() string {
	switch {
	case e.Line > 0 && e.Column > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return e.File + ": " + e.Msg
}

// Decode decodes data (read from path, named in messages) into v, refusing unknown keys. The
// error is an *Error, or several joined (one per unknown key).
func Decode(path string, data []byte, v any) error {
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		return nil
	}
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		errs := make([]error, 0, len(strict.Errors))
		for _, e := range strict.Errors {
			row, col := e.Position()
			errs = append(errs, &Error{File: path, Line: row, Column: col, Msg: fmt.Sprintf("unknown key %q", strings.Join(e.Key(), "."))})
		}
		return errors.Join(errs...)
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		if k := de.Key(); len(k) > 0 {
			msg = fmt.Sprintf("key %q: %s", strings.Join(k, "."), msg)
		}
		return &Error{File: path, Line: row, Column: col, Msg: msg}
	}
	var bare *BareValueError
	if errors.As(err, &bare) {
		if key, row, col, ok := findBareValue(data, bare.Value); ok {
			return &Error{File: path, Line: row, Column: col, Msg: fmt.Sprintf("key %q: %s", key, bare.Msg)}
		}
	}
	return &Error{File: path, Msg: err.Error()}
}

// findBareValue finds the first key whose value is not a string and reads raw: its dotted key
// (within its table) and position.
func findBareValue(data []byte, raw string) (key string, row, col int, ok bool) {
	var p unstable.Parser
	p.Reset(data)
	var table []string
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = table[:0]
			for it := e.Key(); it.Next(); {
				table = append(table, string(it.Node().Data))
			}
		case unstable.KeyValue:
			v := e.Value()
			if v.Kind == unstable.String || string(v.Data) != raw {
				continue
			}
			parts := append([]string(nil), table...)
			for it := e.Key(); it.Next(); {
				parts = append(parts, string(it.Node().Data))
			}
			shape := p.Shape(v.Raw)
			return strings.Join(parts, "."), shape.Start.Line, shape.Start.Column, true
		}
	}
	return "", 0, 0, false
}
