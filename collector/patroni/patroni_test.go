package patroni

import (
	"encoding/json"
	"strings"
	"testing"
)

// Answers as Patroni 3.0.2 gives them, from a real three-member cluster after one switchover.
const (
	selfJSON    = `{"state": "running", "role": "replica", "timeline": 2, "database_system_identifier": "7715046053501778132", "patroni": {"version": "3.0.2", "scope": "demo"}, "pause": true}`
	clusterJSON = `{"members": [{"name": "pg1", "role": "leader", "state": "running", "api_url": "http://127.0.0.1:18001/patroni", "host": "127.0.0.1", "port": 17001, "timeline": 2}, {"name": "pg2", "role": "replica", "state": "running", "api_url": "http://127.0.0.1:18002/patroni", "host": "127.0.0.1", "port": 17002, "timeline": 2, "lag": 280}, {"name": "pg3", "role": "replica", "state": "running", "api_url": "http://127.0.0.1:18003/patroni", "host": "127.0.0.1", "port": 17003, "lag": "unknown"}], "pause": true}`
	historyJSON = `[[1, 67109256, "no recovery target specified", "2026-12-03T11:59:23.782018+00:00", "pg1"], [2], ["x", 1]]`
)

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestAssemble(t *testing.T) {
	self, cl, hist := decode[memberStatus](t, selfJSON), decode[clusterStatus](t, clusterJSON), decode[[][]any](t, historyJSON)
	tests := []struct {
		name, apiAddress, pgAddress, wantSelf string
	}{
		{"matched by its REST API address", "localhost:18002", "10.0.0.9:5432", "pg2"},
		{"matched by its PostgreSQL address", "10.0.0.9:8008", "127.0.0.1:17003", "pg3"},
		{"not in /cluster", "10.0.0.9:8008", "10.0.0.9:5432", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := assemble(self, cl, hist, tt.apiAddress, tt.pgAddress)
			if r.Self.Name != tt.wantSelf || r.Cluster.Leader != "pg1" || !r.Cluster.Paused || r.Cluster.Scope != "demo" {
				t.Fatalf("self %q leader %q paused %v scope %q", r.Self.Name, r.Cluster.Leader, r.Cluster.Paused, r.Cluster.Scope)
			}
			if r.SystemIdentifier != "7715046053501778132" || len(r.Cluster.Members) != 3 {
				t.Fatalf("sysid %q, %d members", r.SystemIdentifier, len(r.Cluster.Members))
			}
			if lag := r.Cluster.Members[1].LagBytes; lag == nil || *lag != 280 {
				t.Errorf("pg2 lag %v, want 280", lag)
			}
			if r.Cluster.Members[2].LagBytes != nil {
				t.Errorf(`pg3 lag "unknown" read as %d`, *r.Cluster.Members[2].LagBytes)
			}
			if len(r.Cluster.History) != 1 || r.Switches != 3 {
				t.Fatalf("history %+v (switches %d): the two malformed entries must be skipped", r.Cluster.History, r.Switches)
			}
			h := r.Cluster.History[0]
			if h.Timeline != 1 || h.LSN != "0/4000188" || h.NewLeader != "pg1" || h.At == nil || h.Reason != "no recovery target specified" {
				t.Errorf("history entry %+v", h)
			}
		})
	}
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		url, wantErr string
	}{
		{"http://127.0.0.1:8008", ""},
		{"https://user:secret@db1:8008/prefix", ""},
		{"ftp://db1", "scheme must be http or https"},
		{"http://", "no host"},
		{"http://db1:8008/?x=1", "no query"},
		{"http://user:secret@db1:8008/?x=1", "xxxxx"}, // the password is redacted
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			_, err := ParseURL(tt.url)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatal(err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("err %v, want %q", err, tt.wantErr)
			case err != nil && strings.Contains(err.Error(), "secret"):
				t.Fatalf("err %v shows the password", err)
			}
		})
	}
}

// FuzzAssemble feeds arbitrary /cluster and /history answers: never a panic, texts within bounds.
func FuzzAssemble(f *testing.F) {
	f.Add(clusterJSON, historyJSON)
	f.Add(`{"members":[{"name":"a","port":-1,"lag":-5,"timeline":-3}]}`, `[[-1,-2]]`)
	f.Fuzz(func(t *testing.T, clusterText, historyText string) {
		var cl clusterStatus
		var hist [][]any
		dec := json.NewDecoder(strings.NewReader(clusterText))
		dec.UseNumber()
		if dec.Decode(&cl) != nil {
			return
		}
		dec = json.NewDecoder(strings.NewReader(historyText))
		dec.UseNumber()
		_ = dec.Decode(&hist)
		r := assemble(memberStatus{}, cl, hist, "127.0.0.1:8008", "127.0.0.1:5432")
		for _, m := range r.Cluster.Members {
			if m.Port < 0 || m.Port > 65535 || m.Timeline < 0 || (m.LagBytes != nil && *m.LagBytes < 0) || len(m.Name) > 256 {
				t.Fatalf("member out of bounds: %+v", m)
			}
		}
		for _, h := range r.Cluster.History {
			if h.Timeline < 0 || len(h.Reason) > 256 {
				t.Fatalf("history entry out of bounds: %+v", h)
			}
		}
	})
}
