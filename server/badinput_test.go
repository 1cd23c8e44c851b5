package server

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
)

// pushJSON builds a push body around raw sample JSON.
func pushJSON(samples ...string) string {
	return fmt.Sprintf(`{"collected_at":%q,"metrics":[%s]}`, time.Now().UTC().Format(time.RFC3339), strings.Join(samples, ","))
}

const goodSample = `{"name":"pg_up","value":1,"labels":{"instance":"db1:5432"}}`

// manySamples returns valid samples with two 600-byte label values, about size bytes of them.
func manySamples(size int) []string {
	v := strings.Repeat("v", 600)
	one := `{"name":"pg_up","value":1,"labels":{"a":"` + v + `","b":"` + v + `"}}`
	out := make([]string, size/len(one)+1)
	for i := range out {
		out[i] = one
	}
	return out
}

func labels(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"l%d":"v"`, i)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// gzipBomb compresses a prefix followed by decompressed bytes of fill (a few hundred KiB on the wire).
func gzipBomb(t *testing.T, prefix string, fill byte, decompressed int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write([]byte(prefix)); err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte{fill}, 1<<20)
	for written := 0; written < decompressed; written += len(chunk) {
		if _, err := zw.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestPushBadInput sends every kind of hostile push to the real server: each gets its precise 4xx
// JSON error, nothing is a 500, and nothing already stored is lost or half-written.
func TestPushBadInput(t *testing.T) {
	ts := startServer(t)
	reg := ts.register("bad-input")
	mustStatus(t, ts.push(reg.Token, []byte(pushJSON(goodSample, goodSample)), false), http.StatusAccepted)
	before := ts.sampleCount(reg.CollectorID)
	if before != 2 {
		t.Fatalf("valid push stored %d samples", before)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	old := time.Now().Add(-60 * 24 * time.Hour).UTC().Format(time.RFC3339)

	cases := []struct {
		name     string
		body     []byte
		encoding string
		status   int
		code     string
		message  string // substring
	}{
		{"malformed JSON", []byte(`{"collected_at":`), "", 400, codeMalformedJSON, "unexpected end"},
		{"not an object", []byte(`[1,2]`), "", 400, codeMalformedJSON, "JSON object"},
		{"syntax error in a sample", []byte(pushJSON(goodSample, `{"name":"x",}`)), "", 400, codeMalformedJSON, "metrics[1]"},
		{"trailing data", []byte(pushJSON(goodSample) + `{}`), "", 400, codeMalformedJSON, "after the JSON"},
		{"value as string", []byte(pushJSON(goodSample, `{"name":"pg_up","value":"1"}`)), "", 400, codeInvalidSample, "metrics[1]: value: expected a finite number, got string"},
		{"value NaN string", []byte(pushJSON(`{"name":"pg_up","value":"NaN"}`)), "", 400, codeInvalidSample, "metrics[0]: value"},
		{"value Infinity string", []byte(pushJSON(`{"name":"pg_up","value":"Infinity"}`)), "", 400, codeInvalidSample, "metrics[0]: value"},
		{"value bare NaN", []byte(pushJSON(`{"name":"pg_up","value":NaN}`)), "", 400, codeMalformedJSON, "metrics[0]"},
		{"value 1e999", []byte(pushJSON(goodSample, goodSample, `{"name":"pg_up","value":1e999}`)), "", 400, codeInvalidSample, "metrics[2]: value: number 1e999 is out of range"},
		{"value -1e999", []byte(pushJSON(`{"name":"pg_up","value":-1e999}`)), "", 400, codeInvalidSample, "out of range"},
		{"labels as array", []byte(pushJSON(`{"name":"pg_up","value":1,"labels":["a"]}`)), "", 400, codeInvalidSample, "metrics[0]: labels: expected an object"},
		{"label value as number", []byte(pushJSON(`{"name":"pg_up","value":1,"labels":{"a":1}}`)), "", 400, codeInvalidSample, "metrics[0]"},
		{"collected_at as number", []byte(`{"collected_at":5,"metrics":[` + goodSample + `]}`), "", 400, codeMalformedJSON, "collected_at"},
		{"collected_at not RFC 3339", []byte(`{"collected_at":"yesterday","metrics":[` + goodSample + `]}`), "", 400, codeMalformedJSON, "RFC 3339"},
		{"collected_at missing", []byte(`{"metrics":[` + goodSample + `]}`), "", 400, codeValidation, "collected_at is required"},
		{"metric name starting with a digit", []byte(pushJSON(goodSample, `{"name":"1pg","value":1}`)), "", 400, codeInvalidSample, "metrics[1]: name \"1pg\" does not match"},
		{"metric name with a dash", []byte(pushJSON(`{"name":"pg-up","value":1}`)), "", 400, codeInvalidSample, "does not match"},
		{"metric name with SQL", []byte(pushJSON(`{"name":"x'); DROP TABLE samples;--","value":1}`)), "", 400, codeInvalidSample, "does not match"},
		{"metric name empty", []byte(pushJSON(`{"name":"","value":1}`)), "", 400, codeInvalidSample, "name is required"},
		{"metric name too long", []byte(pushJSON(`{"name":"` + strings.Repeat("a", 201) + `","value":1}`)), "", 400, codeInvalidSample, "longer than 200"},
		{"33 labels", []byte(pushJSON(`{"name":"pg_up","value":1,"labels":` + labels(33) + `}`)), "", 400, codeInvalidSample, "33 labels, at most 32"},
		{"label name invalid", []byte(pushJSON(`{"name":"pg_up","value":1,"labels":{"bad-name":"v"}}`)), "", 400, codeInvalidSample, "label name \"bad-name\""},
		{"label name reserved", []byte(pushJSON(`{"name":"pg_up","value":1,"labels":{"__name__":"v"}}`)), "", 400, codeInvalidSample, "reserved"},
		{"label name too long", []byte(pushJSON(`{"name":"pg_up","value":1,"labels":{"` + strings.Repeat("a", 129) + `":"v"}}`)), "", 400, codeInvalidSample, "label name longer than 128"},
		{"label value too long", []byte(pushJSON(`{"name":"pg_up","value":1,"labels":{"a":"` + strings.Repeat("v", 1025) + `"}}`)), "", 400, codeInvalidSample, "value longer than 1024"},
		{"timestamp in the future", []byte(pushJSON(`{"name":"pg_up","value":1,"timestamp":"` + future + `"}`)), "", 400, codeInvalidSample, "in the future"},
		{"timestamp beyond retention", []byte(pushJSON(`{"name":"pg_up","value":1,"timestamp":"` + old + `"}`)), "", 400, codeInvalidSample, "older than the retention"},
		{"unknown top-level field", []byte(`{"collected_at":"2026-01-01T00:00:00Z","metrics":[],"extra":1}`), "", 400, codeMalformedJSON, `unknown field "extra"`},
		{"unknown sample field", []byte(pushJSON(`{"name":"pg_up","value":1,"unit":"s"}`)), "", 400, codeInvalidSample, `metrics[0]: unknown field "unit"`},
		{"unknown snapshot field", []byte(`{"collected_at":"` + time.Now().UTC().Format(time.RFC3339) + `","metrics":[` + goodSample + `],"snapshot":{"clusters":[],"surprise":true}}`), "", 400, codeMalformedJSON, "snapshot: unknown field"},
		{"duplicate field", []byte(`{"metrics":[` + goodSample + `],"metrics":[]}`), "", 400, codeMalformedJSON, "duplicate field"},
		{"empty batch", []byte(pushJSON()), "", 400, codeEmptyBatch, "no samples"},
		{"metrics null", []byte(`{"collected_at":"` + time.Now().UTC().Format(time.RFC3339) + `","metrics":null}`), "", 400, codeEmptyBatch, "no samples"},
		{"metrics missing", []byte(`{"collected_at":"` + time.Now().UTC().Format(time.RFC3339) + `"}`), "", 400, codeEmptyBatch, "no samples"},
		{"empty body", []byte{}, "", 400, codeMalformedJSON, "unexpected end"},
		{"invalid UTF-8 in a label", []byte(pushJSON(goodSample, "{\"name\":\"pg_up\",\"value\":1,\"labels\":{\"a\":\"\xff\xfe\"}}")), "", 400, codeInvalidUTF8, "metrics[1]: invalid UTF-8"},
		{"invalid UTF-8 in the snapshot", []byte(`{"collected_at":"` + time.Now().UTC().Format(time.RFC3339) + `","metrics":[` + goodSample + "],\"snapshot\":{\"clusters\":[{\"system_identifier\":\"\xc3\x28\"}]}}"), "", 400, codeInvalidUTF8, "snapshot"},
		{"status utilization above 1", []byte(`{"collected_at":"` + time.Now().UTC().Format(time.RFC3339) + `","metrics":[` + goodSample + `],"status":{"buffer_utilization":1.5}}`), "", 400, codeValidation, "buffer_utilization"},
		{"body over the wire cap", []byte(pushJSON(manySamples(9 << 20)...)), "", 413, codePayloadTooLarge, "on the wire"},
		{"gzip bomb inside a label value", gzipBomb(t, `{"collected_at":"2026-01-01T00:00:00Z","metrics":[{"name":"a","value":1,"labels":{"a":"`, 'a', 65<<20), "gzip", 413, codePayloadTooLarge, "metrics[0] exceeds 262144 bytes"},
		{"gzip bomb of whitespace", gzipBomb(t, `{"collected_at":"2026-01-01T00:00:00Z","metrics":[`, ' ', 65<<20), "gzip", 413, codePayloadTooLarge, "metrics[0] exceeds 262144 bytes"},
		{"gzip bomb of valid samples", gzipJSON(t, []byte(pushJSON(manySamples(33<<20)...))), "gzip", 413, codePayloadTooLarge, "decompressed body exceeds 33554432 bytes"},
		{"snapshot over its bound", gzipBomb(t, `{"collected_at":"2026-01-01T00:00:00Z","metrics":[`+goodSample+`],"snapshot":{"clusters":[{"system_identifier":"`, '7', 16<<20), "gzip", 413, codePayloadTooLarge, "snapshot exceeds 2097152 bytes"},
		{"duplicate field in a sample", []byte(pushJSON(`{"name":"pg_up","value":1,"value":2}`)), "", 400, codeMalformedJSON, `metrics[0]: duplicate field "value"`},
		{"duplicate label", []byte(pushJSON(`{"name":"pg_up","value":1,"labels":{"a":"1","a":"2"}}`)), "", 400, codeMalformedJSON, `metrics[0]: duplicate field "a"`},
		{"duplicate label spelt with an escape", []byte(pushJSON(`{"name":"pg_up","value":1,"labels":{"a":"1","\u0061":"2"}}`)), "", 400, codeMalformedJSON, `metrics[0]: duplicate field "a"`},
		{"duplicate field in the status", []byte(`{"collected_at":"` + time.Now().UTC().Format(time.RFC3339) + `","metrics":[` + goodSample + `],"status":{"version":"1","version":"2"}}`), "", 400, codeMalformedJSON, `duplicate field "version"`},
		{"sample field in another case", []byte(pushJSON(`{"name":"pg_up","value":1,"Name":"x"}`)), "", 400, codeInvalidSample, `metrics[0]: unknown field "Name"`},
		{"NUL in a label value", []byte(pushJSON(`{"name":"pg_up","value":1,"labels":{"a":"x\u0000y"}}`)), "", 400, codeInvalidSample, `metrics[0]: label "a" value contains a NUL character`},
		{"NUL in the status", []byte(`{"collected_at":"` + time.Now().UTC().Format(time.RFC3339) + `","metrics":[` + goodSample + `],"status":{"version":"1\u0000"}}`), "", 400, codeValidation, "NUL"},
		{"gzip bomb of zeros", gzipBomb(t, "", 0, 65<<20), "gzip", 400, codeMalformedJSON, "invalid character"},
		{"not gzip", []byte(pushJSON(goodSample)), "gzip", 400, codeInvalidGzip, "invalid gzip"},
		{"truncated gzip", gzipJSON(t, []byte(pushJSON(goodSample)))[:20], "gzip", 400, codeInvalidGzip, "invalid gzip"},
		{"empty gzip body", []byte{}, "gzip", 400, codeInvalidGzip, "invalid gzip"},
		{"brotli", []byte(pushJSON(goodSample)), "br", 415, codeUnsupportedMediaType, "gzip or identity"},
		{"deflate", []byte(pushJSON(goodSample)), "deflate", 415, codeUnsupportedMediaType, "gzip or identity"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.do(req{method: "POST", path: "/api/v1/metrics/push", token: reg.Token, body: tc.body,
				header: map[string]string{"Content-Encoding": tc.encoding}})
			if r.status != tc.status || r.errorCode() != tc.code || !strings.Contains(r.errorMessage(), tc.message) {
				t.Fatalf("got %d %s, want %d %s containing %q", r.status, r.body, tc.status, tc.code, tc.message)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
		})
	}
	if after := ts.sampleCount(reg.CollectorID); after != before {
		t.Fatalf("samples changed from %d to %d by refused pushes", before, after)
	}
	if got := ts.metricValue(`pganalytics_api_ingest_errors_total{reason="too_large"}`); got != "5" {
		t.Fatalf("ingest errors too_large = %q", got)
	}

	t.Run("a valid push still lands", func(t *testing.T) {
		mustStatus(t, ts.push(reg.Token, gzipJSON(t, samplePush(500)), true), http.StatusAccepted)
		if after := ts.sampleCount(reg.CollectorID); after != before+500 {
			t.Fatalf("samples %d, want %d", after, before+500)
		}
	})
}

// TestSmallBodiesBadInput covers the JSON endpoints other than push.
func TestSmallBodiesBadInput(t *testing.T) {
	ts := startServer(t)
	admin := ts.userToken("admin", api.RoleAdmin)
	reg := ts.register("small-bodies")
	secret := map[string]string{"X-Registration-Secret": testRegistrationSecret}

	cases := []struct {
		name   string
		r      req
		status int
		code   string
	}{
		{"login malformed", req{method: "POST", path: "/api/v1/auth/login", body: `{"username":`}, 400, codeMalformedJSON},
		{"login wrong types", req{method: "POST", path: "/api/v1/auth/login", body: `{"username":1,"password":true}`}, 400, codeMalformedJSON},
		{"login unknown field", req{method: "POST", path: "/api/v1/auth/login", body: `{"username":"a","password":"b","otp":1}`}, 400, codeMalformedJSON},
		{"login invalid UTF-8", req{method: "POST", path: "/api/v1/auth/login", body: "{\"username\":\"\xff\",\"password\":\"x\"}"}, 400, codeInvalidUTF8},
		{"login oversized", req{method: "POST", path: "/api/v1/auth/login", body: `{"username":"` + strings.Repeat("a", 70<<10) + `"}`}, 413, codePayloadTooLarge},
		{"login gzip", req{method: "POST", path: "/api/v1/auth/login", body: `{}`, header: map[string]string{"Content-Encoding": "gzip"}}, 415, codeUnsupportedMediaType},
		{"login empty body", req{method: "POST", path: "/api/v1/auth/login"}, 400, codeMalformedJSON},
		{"refresh missing token", req{method: "POST", path: "/api/v1/auth/refresh", body: `{}`}, 400, codeValidation},
		{"refresh garbage token", req{method: "POST", path: "/api/v1/auth/refresh", body: `{"refresh_token":"x.y.z"}`}, 401, codeInvalidToken},
		{"register bad name", req{method: "POST", path: "/api/v1/collectors/register", header: secret, body: `{"name":"a b","hostname":"h"}`}, 400, codeValidation},
		{"register SQL in name", req{method: "POST", path: "/api/v1/collectors/register", header: secret, body: `{"name":"x'); DROP TABLE collectors;--","hostname":"h"}`}, 400, codeValidation},
		{"register bad hostname", req{method: "POST", path: "/api/v1/collectors/register", header: secret, body: `{"name":"ok","hostname":""}`}, 400, codeValidation},
		{"register duplicate", req{method: "POST", path: "/api/v1/collectors/register", header: secret, body: `{"name":"small-bodies","hostname":"h"}`}, 409, codeConflict},
		{"register wrong secret", req{method: "POST", path: "/api/v1/collectors/register", header: map[string]string{"X-Registration-Secret": "nope"}, body: `{"name":"n","hostname":"h"}`}, 401, codeInvalidRegistration},
		{"register no secret", req{method: "POST", path: "/api/v1/collectors/register", body: `{"name":"n","hostname":"h"}`}, 401, codeInvalidRegistration},
		{"create user bad role", req{method: "POST", path: "/api/v1/users", token: admin, body: `{"username":"bob","password":"long enough","role":"root"}`}, 400, codeValidation},
		{"create user short password", req{method: "POST", path: "/api/v1/users", token: admin, body: `{"username":"bob","password":"short","role":"viewer"}`}, 400, codeValidation},
		{"create user bad name", req{method: "POST", path: "/api/v1/users", token: admin, body: `{"username":"bob smith","password":"long enough","role":"viewer"}`}, 400, codeValidation},
		{"create user duplicate", req{method: "POST", path: "/api/v1/users", token: admin, body: `{"username":"admin","password":"long enough","role":"viewer"}`}, 409, codeConflict},
		{"put config zero interval", req{method: "PUT", path: "/api/v1/config/" + reg.CollectorID, token: admin, body: `{"interval_seconds":0,"query_timeout_seconds":1}`}, 400, codeValidation},
		{"put config timeout above interval", req{method: "PUT", path: "/api/v1/config/" + reg.CollectorID, token: admin, body: `{"interval_seconds":5,"query_timeout_seconds":6}`}, 400, codeValidation},
		{"put config other id in body", req{method: "PUT", path: "/api/v1/config/" + reg.CollectorID, token: admin, body: `{"collector_id":"00000000-0000-0000-0000-000000000000","interval_seconds":5,"query_timeout_seconds":1}`}, 400, codeValidation},
		{"put config wrong type", req{method: "PUT", path: "/api/v1/config/" + reg.CollectorID, token: admin, body: `{"interval_seconds":"10"}`}, 400, codeMalformedJSON},
		{"put config unknown collector", req{method: "PUT", path: "/api/v1/config/00000000-0000-0000-0000-000000000000", token: admin, body: `{"interval_seconds":10,"query_timeout_seconds":5}`}, 404, codeNotFound},
		{"unknown endpoint", req{method: "GET", path: "/api/v1/nope"}, 404, codeNotFound},
		{"wrong method", req{method: "PATCH", path: "/api/v1/health"}, 405, codeMethodNotAllowed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.do(tc.r)
			if r.status != tc.status || r.errorCode() != tc.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
		})
	}
}

// TestSQLInjectionInParameters puts injection strings into every path and query parameter: each is
// a 4xx, and the tables are untouched.
func TestSQLInjectionInParameters(t *testing.T) {
	ts := startServer(t)
	admin := ts.userToken("admin", api.RoleAdmin)
	reg := ts.register("target")
	mustStatus(t, ts.push(reg.Token, []byte(pushJSON(goodSample)), false), http.StatusAccepted)
	injections := []string{
		`' OR '1'='1`,
		`1; DROP TABLE collectors;--`,
		`00000000-0000-0000-0000-000000000000' OR 1=1--`,
		`'); DELETE FROM users;--`,
		`%27%20OR%201%3D1`,
		`" OR ""="`,
		strings.Repeat("A", 300),
	}
	for _, inj := range injections {
		p := url.PathEscape(inj)
		q := url.QueryEscape(inj)
		cases := []req{
			{method: "GET", path: "/api/v1/collectors/" + p},
			{method: "DELETE", path: "/api/v1/collectors/" + p},
			{method: "GET", path: "/api/v1/config/" + p},
			{method: "PUT", path: "/api/v1/config/" + p, body: `{"interval_seconds":10,"query_timeout_seconds":5}`},
			{method: "DELETE", path: "/api/v1/users/" + p},
			{method: "GET", path: "/api/v1/metrics?collector_id=" + q},
			{method: "GET", path: "/api/v1/metrics?name=" + q},
			{method: "GET", path: "/api/v1/metrics?since=" + q},
			{method: "GET", path: "/api/v1/metrics?until=" + q},
			{method: "GET", path: "/api/v1/metrics?limit=" + q},
			{method: "GET", path: "/api/v1/metrics?" + q + "=1"},
			{method: "GET", path: "/api/v1/replication?collector_id=" + q},
			{method: "GET", path: "/api/v1/replication/stream?collector_id=" + q},
			{method: "GET", path: "/api/v1/audit?action=" + q},
			{method: "GET", path: "/api/v1/audit?before_id=" + q},
			{method: "GET", path: "/api/v1/audit?limit=" + q},
		}
		for _, c := range cases {
			c.token = admin
			t.Run(c.method+" "+c.path, func(t *testing.T) {
				r := ts.do(c)
				if r.status < 400 || r.status >= 500 || r.errorCode() == "" {
					t.Fatalf("got %d %s, want a 4xx JSON error", r.status, r.body)
				}
			})
		}
	}
	var collectors, users, samples int
	err := ts.pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM collectors WHERE deleted_at IS NULL),
		(SELECT count(*) FROM users), (SELECT count(*) FROM metrics)`).Scan(&collectors, &users, &samples)
	if err != nil {
		t.Fatal(err)
	}
	if collectors != 1 || users != 1 || samples != 1 {
		t.Fatalf("tables changed: %d collectors, %d users, %d samples", collectors, users, samples)
	}
}

// TestRejectedBatchIsAtomic refuses a batch whose third sample is bad: none of it is stored.
func TestRejectedBatchIsAtomic(t *testing.T) {
	ts := startServer(t)
	reg := ts.register("atomic")
	p := samplePush(5)
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(raw, []byte(`"value":2`), []byte(`"value":"2"`), 1)
	r := ts.push(reg.Token, gzipJSON(t, bad), true)
	if r.status != http.StatusBadRequest || !strings.Contains(r.errorMessage(), "metrics[2]") {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	if n := ts.sampleCount(reg.CollectorID); n != 0 {
		t.Fatalf("%d samples of a refused batch stored", n)
	}
}
