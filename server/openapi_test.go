package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
)

// TestOpenAPIMatchesRoutes: the served document lists exactly the routes the server registers.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	ts := startServer(t)
	var documented []string
	for _, op := range operations {
		documented = append(documented, op.pattern)
	}
	registered := slices.Clone(ts.srv.patterns)
	sort.Strings(documented)
	sort.Strings(registered)
	if !slices.Equal(documented, registered) {
		t.Fatalf("the OpenAPI table and the routes differ:\ndocumented %v\nregistered %v", documented, registered)
	}
	doc := fetchOpenAPI(t, ts)
	n := 0
	for path, item := range doc.Paths {
		for method := range item {
			n++
			if !slices.Contains(registered, strings.ToUpper(method)+" "+path) {
				t.Errorf("the document has %s %s, which is no route", method, path)
			}
		}
	}
	if n != len(registered) {
		t.Errorf("the document has %d operations, the server %d routes", n, len(registered))
	}
}

// openAPIDoc is the part of the document the fuzzer reads.
type openAPIDoc struct {
	OpenAPI string `json:"openapi"`
	Paths   map[string]map[string]struct {
		Parameters []struct {
			Name string `json:"name"`
			In   string `json:"in"`
		} `json:"parameters"`
		RequestBody *struct{} `json:"requestBody"`
		Responses   map[string]struct {
			Content map[string]struct {
				Schema struct {
					Ref string `json:"$ref"`
				} `json:"schema"`
			} `json:"content"`
		} `json:"responses"`
	} `json:"paths"`
	Components struct {
		Schemas map[string]struct {
			Required []string `json:"required"`
		} `json:"schemas"`
	} `json:"components"`
}

func fetchOpenAPI(t *testing.T, ts *testServer) openAPIDoc {
	t.Helper()
	r := ts.do(req{method: "GET", path: "/api/v1/openapi.json"})
	mustStatus(t, r, http.StatusOK)
	var doc openAPIDoc
	if err := json.Unmarshal(r.body, &doc); err != nil || doc.OpenAPI != "3.0.3" || len(doc.Paths) == 0 {
		t.Fatalf("GET /api/v1/openapi.json: %v\n%.300s", err, r.body)
	}
	return doc
}

// Hostile values the fuzzer draws from.
var (
	fuzzStrings = []string{
		"", "x", "0", "-1", "99999999999999999999", "6f1c8f5e-0000-4000-8000-000000000000", "../../etc/passwd",
		"%00", "' OR '1'='1", "\"; DROP TABLE users; --", "ünïcödé", "\u202e", strings.Repeat("a", 5000),
		"2026-12-04T10:00:00Z", "yesterday", "1e309", "NaN", "<script>", "${jndi:ldap://x}",
	}
	fuzzBodies = []string{
		"", "{}", "[]", "null", "0", `"s"`, "{", `{"a":}`, `{"username":"admin","password":"x"}`,
		`{"refresh_token":"x.y.z"}`, `{"name":"n","hostname":"h"}`, `{"collected_at":"2026-12-04T10:00:00Z","metrics":[]}`,
		`{"collected_at":"2026-12-04T10:00:00Z","metrics":[{"name":"pg_up","value":1,"labels":{"a":"b","a":"c"}}]}`,
		strings.Repeat("[", 10000), `{"x":"` + strings.Repeat("y", 70000) + `"}`, "\x00\x01\x02", `{"a":1,"a":2}`,
		`{"interval_seconds":-5,"query_timeout_seconds":1e9}`, `{"username":"u","password":"p","role":"root"}`,
		`{"matchers":[{"name":"alertname","value":".*"}],"ends_at":"never","comment":""}`,
	}
)

// TestOpenAPIFuzz drives every operation of the served document with random hostile path
// parameters, query parameters, bodies and credentials for PGA_API_FUZZ_TIME (default 5 s) and
// checks the properties every answer must have: never a 5xx, a refusal always the JSON error
// envelope, a success JSON with the documented required fields.
func TestOpenAPIFuzz(t *testing.T) {
	budget := 5 * time.Second
	if v := os.Getenv("PGA_API_FUZZ_TIME"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("PGA_API_FUZZ_TIME=%q: %v", v, err)
		}
		budget = d
	}
	ts := startServer(t)
	doc := fetchOpenAPI(t, ts)
	reg := ts.register("fuzz-collector")
	tokens := []string{"", "garbage", ts.userToken("fuzz-viewer", api.RoleViewer), ts.userToken("fuzz-operator", api.RoleOperator),
		ts.userToken("fuzz-admin", api.RoleAdmin), reg.Token}
	type op struct{ method, path string }
	var ops []op
	for path, item := range doc.Paths {
		for method := range item {
			ops = append(ops, op{strings.ToUpper(method), path})
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].method+ops[i].path < ops[j].method+ops[j].path })
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	pick := func(vs []string) string { return vs[rng.IntN(len(vs))] }
	client := &http.Client{Timeout: 10 * time.Second}
	deadline := time.Now().Add(budget)
	requests, refused := 0, 0
	for i := 0; time.Now().Before(deadline) || i < len(ops); i++ {
		o := ops[i%len(ops)]
		spec := doc.Paths[o.path][strings.ToLower(o.method)]
		if o.path == "/api/v1/users/{id}" && o.method == "DELETE" {
			continue // would delete the fuzzer's own users: covered by the hostile-input tests
		}
		path := o.path
		query := []string{}
		for _, p := range spec.Parameters {
			v := pick(fuzzStrings)
			switch p.In {
			case "path":
				path = strings.Replace(path, "{"+p.Name+"}", url.PathEscape(v), 1)
			case "query":
				if rng.IntN(2) == 0 {
					query = append(query, p.Name+"="+url.QueryEscape(v))
				}
			}
		}
		if len(query) > 0 {
			path += "?" + strings.Join(query, "&")
		}
		var body io.Reader
		b := ""
		if spec.RequestBody != nil || rng.IntN(8) == 0 {
			b = pick(fuzzBodies)
			body = strings.NewReader(b)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		hr, err := http.NewRequestWithContext(ctx, o.method, ts.url+path, body)
		if err != nil {
			cancel()
			continue // a generated path Go will not send: nothing to check
		}
		if tok := pick(tokens); tok != "" {
			hr.Header.Set("Authorization", "Bearer "+tok)
		}
		if body != nil {
			hr.Header.Set("Content-Type", "application/json")
		}
		if rng.IntN(4) == 0 {
			hr.Header.Set("X-Registration-Secret", pick([]string{testRegistrationSecret, "wrong", ""}))
		}
		resp, err := client.Do(hr)
		if err != nil {
			cancel()
			t.Fatalf("%s %s: %v", o.method, path, err)
		}
		var got []byte
		if strings.HasSuffix(o.path, "/stream") && resp.StatusCode == http.StatusOK {
			got = nil // an open event stream: its status is the answer
		} else {
			got, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		}
		resp.Body.Close()
		cancel()
		requests++
		where := fmt.Sprintf("%s %s (body %.60q)", o.method, path, b)
		switch {
		case resp.StatusCode >= 500:
			t.Fatalf("%s: %d %.300s", where, resp.StatusCode, got)
		case resp.StatusCode >= 400:
			refused++
			var e api.Error
			if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || json.Unmarshal(got, &e) != nil ||
				e.Error.Code == "" || e.Error.Message == "" {
				t.Fatalf("%s: %d is not the error envelope: %q %.300s", where, resp.StatusCode, resp.Header.Get("Content-Type"), got)
			}
		default:
			r, ok := spec.Responses[fmt.Sprint(resp.StatusCode)]
			if !ok {
				t.Fatalf("%s: status %d is not documented", where, resp.StatusCode)
			}
			ct, ok := r.Content["application/json"]
			if !ok || got == nil {
				continue
			}
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(got, &obj); err != nil {
				t.Fatalf("%s: %d body is not a JSON object: %.300s", where, resp.StatusCode, got)
			}
			schema := strings.TrimPrefix(ct.Schema.Ref, "#/components/schemas/")
			for _, k := range doc.Components.Schemas[schema].Required {
				if _, ok := obj[k]; !ok {
					t.Fatalf("%s: %d answer lacks %q required by schema %s: %.300s", where, resp.StatusCode, k, schema, got)
				}
			}
		}
	}
	t.Logf("%d requests over %d operations in %s: %d refused (4xx), 0 × 5xx, every answer matched its schema", requests, len(ops), budget, refused)
}
