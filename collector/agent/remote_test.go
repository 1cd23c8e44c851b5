package agent

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pganalytics/pganalytics/internal/api"
)

func TestEffectiveSettings(t *testing.T) {
	local := settings{interval: 10 * time.Second, replication: true}
	stored := func(interval int, replication bool) api.CollectorConfig {
		now := time.Now()
		return api.CollectorConfig{IntervalSeconds: interval, PgReplicationEnabled: replication, UpdatedAt: &now}
	}
	tests := []struct {
		name       string
		local      settings
		stored     api.CollectorConfig
		want       settings
		belowFloor bool
	}{
		{"never stored: the local file", local, api.CollectorConfig{IntervalSeconds: 60}, local, false},
		{"a longer interval", local, stored(30, true), settings{30 * time.Second, true, 0}, false},
		{"a shorter interval: the local file is the floor", local, stored(5, true), local, true},
		{"replication turned off", local, stored(10, false), settings{10 * time.Second, false, 0}, false},
		{"replication cannot be turned on", settings{10 * time.Second, false, 0}, stored(10, true), settings{10 * time.Second, false, 0}, false},
		{"no interval stored", local, stored(0, true), local, false},
		{"a query timeout", local, func() api.CollectorConfig { c := stored(10, true); c.QueryTimeoutSeconds = 3; return c }(), settings{10 * time.Second, true, 3 * time.Second}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, below := effective(tt.local, tt.stored)
			if got != tt.want || below != tt.belowFloor {
				t.Fatalf("effective = %+v (below floor %v), want %+v (%v)", got, below, tt.want, tt.belowFloor)
			}
		})
	}
}

func TestCollectorIDFromToken(t *testing.T) {
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{Subject: "c0ffee"}).SignedString([]byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	if got := CollectorIDFromToken(tok); got != "c0ffee" {
		t.Fatalf("id %q, want c0ffee", got)
	}
	if got := CollectorIDFromToken("not a token"); got != "" {
		t.Fatalf("id %q from garbage, want none", got)
	}
}
