package runbook

import (
	"strings"
	"testing"
)

func TestParseServers(t *testing.T) {
	tests := []struct {
		list string
		want string // NAME=URL;… or the error's text
	}{
		{"api-1=https://10.0.0.1:8080", "api-1=https://10.0.0.1:8080"},
		{"a=https://h1/, b=http://h2:8080\n c=https://h3", "a=https://h1;b=http://h2:8080;c=https://h3"},
		{"", "the list is empty"},
		{" , ", "the list is empty"},
		{"api-1", "want NAME=URL"},
		{"../x=https://h", "want NAME=URL"},
		{"a=ftp://h", "not an http(s) URL"},
		{"a=https://user:pw@h", "the URL holds credentials"},
		{"a=https://", "not an http(s) URL"},
		{"a=https://h1 a=https://h2", "a named twice"},
	}
	for _, tt := range tests {
		t.Run(tt.list, func(t *testing.T) {
			servers, err := ParseServers(tt.list)
			var got string
			if err != nil {
				got = err.Error()
			} else {
				var parts []string
				for _, s := range servers {
					parts = append(parts, s.Name+"="+s.URL)
				}
				got = strings.Join(parts, ";")
			}
			if !strings.Contains(got, tt.want) {
				t.Fatalf("ParseServers(%q) = %q, want %q", tt.list, got, tt.want)
			}
			if strings.Contains(got, "pw") {
				t.Fatalf("the error shows the URL's password: %s", got)
			}
		})
	}
}
