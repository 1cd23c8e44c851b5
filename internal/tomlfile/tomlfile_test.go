package tomlfile

import (
	"errors"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	type conf struct {
		Name  string `toml:"name"`
		Count int    `toml:"count"`
		Inner struct {
			On bool `toml:"on"`
		} `toml:"inner"`
	}
	cases := []struct {
		name, doc string
		want      []string // substrings; none: no error
	}{
		{"ok", "name = \"a\"\ncount = 2\n[inner]\non = true\n", nil},
		{"unknown keys, each with its place", "name = \"a\"\nnmae = 1\n[inner]\noff = true\n", []string{`f.toml:2:1: unknown key "nmae"`, `f.toml:4:1: unknown key "inner.off"`}},
		{"wrong type names the key", "count = \"two\"\n", []string{"f.toml:1:", `key "count"`}},
		{"syntax", "name = \n", []string{"f.toml:1:"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var c conf
			err := Decode("f.toml", []byte(tc.doc), &c)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			var te *Error
			if !errors.As(err, &te) || te.File != "f.toml" || te.Line < 1 {
				t.Errorf("%v is not an *Error with its place (%+v)", err, te)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q lacks %q", err, w)
				}
			}
		})
	}
}
