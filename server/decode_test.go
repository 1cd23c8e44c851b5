package server

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pganalytics/pganalytics/internal/api"
)

// FuzzDecodeBody feeds arbitrary bodies to the decoder of every small JSON request (login, users,
// registration, configuration): never a panic or a 5xx, and whatever it accepts is valid UTF-8 with
// no name twice in one object and no NUL in any string.
func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{
		`{"username":"admin","password":"correct horse"}`,
		`{"username":"admin","password":"x","password":"y"}`,
		`{"username":"ad\u0000min","password":"x"}`,
		`{"Username":"admin"}`, `{"username":"admin"} {}`, `[]`, ``, `{"username":"\ud800"}`,
		"{\"username\":\"\xff\"}", `{"username":"a","extra":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req api.LoginRequest
		r := httptest.NewRequest(http.MethodPost, "/api/v1/auth/login", bytes.NewReader(body))
		e := decodeBody(httptest.NewRecorder(), r, 64<<10, &req)
		if e != nil {
			if e.status < 400 || e.status > 499 || e.code == "" || e.message == "" {
				t.Fatalf("bad error %+v", e)
			}
			return
		}
		if !utf8.Valid(body) {
			t.Fatal("accepted invalid UTF-8")
		}
		if dup := duplicateName(body); dup != "" {
			t.Fatalf("accepted the name %q twice", dup)
		}
		if strings.ContainsRune(req.Username, 0) || strings.ContainsRune(req.Password, 0) {
			t.Fatalf("accepted a NUL: %q", req)
		}
	})
}

func TestNulField(t *testing.T) {
	type inner struct {
		Name string `json:"name"`
	}
	type outer struct {
		Plain  string            `json:"plain"`
		Nested *inner            `json:"nested"`
		List   []inner           `json:"list"`
		Labels map[string]string `json:"labels"`
		Hidden string            `json:"-"`
	}
	cases := []struct {
		name string
		v    outer
		want string
	}{
		{"none", outer{Plain: "ok", Nested: &inner{"ok"}, Hidden: "a\x00"}, ""},
		{"plain", outer{Plain: "a\x00"}, "plain"},
		{"nested", outer{Nested: &inner{"\x00"}}, "nested.name"},
		{"list", outer{List: []inner{{"ok"}, {"b\x00"}}}, "list[1].name"},
		{"map value", outer{Labels: map[string]string{"k": "\x00"}}, "labels.k"},
		{"map key", outer{Labels: map[string]string{"k\x00": "v"}}, "labels"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := nulField(reflect.ValueOf(&tc.v), ""); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
