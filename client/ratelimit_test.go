package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// TestRateLimitRetries: a client allowed n waits rides out up to n 429s per call, typed or raw; a
// Retry-After beyond maxRateLimitWait, or no waits allowed, returns the 429 at once.
func TestRateLimitRetries(t *testing.T) {
	tests := []struct {
		name       string
		retries    int
		limited    int32  // 429s the server answers before a 200
		retryAfter string // the 429's Retry-After
		wantOK     bool
		wantServed int32 // requests the server saw
	}{
		{"no waits allowed", 0, 1, "1", false, 1},
		{"one wait rides out one 429", 1, 1, "1", true, 2},
		{"waits are bounded", 1, 2, "1", false, 2},
		{"a long Retry-After is not waited out", 3, 1, "120", false, 1},
		{"a 429 without Retry-After is not waited out", 3, 1, "", false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, raw := range []bool{false, true} {
				var served atomic.Int32
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					if served.Add(1) <= tt.limited {
						if tt.retryAfter != "" {
							w.Header().Set("Retry-After", tt.retryAfter)
						}
						w.Header().Set("Content-Type", "application/json")
						w.WriteHeader(http.StatusTooManyRequests)
						_, _ = w.Write([]byte(`{"error":{"code":"rate_limited","message":"slow down"}}`))
						return
					}
					w.Header().Set("Content-Type", "application/json")
					_, _ = w.Write([]byte(`{"status":"healthy","uptime":1,"version":"t","checks":{}}`))
				}))
				c, err := New(Options{BaseURL: srv.URL, RateLimitRetries: tt.retries})
				if err != nil {
					t.Fatal(err)
				}
				var ok bool
				if raw {
					resp, err := c.Do(context.Background(), RawRequest{Path: APIPrefix + "/health"})
					if err != nil {
						t.Fatal(err)
					}
					ok = resp.Status == http.StatusOK
				} else {
					_, err := c.Health(context.Background())
					var apiErr *APIError
					if err != nil && (!errors.As(err, &apiErr) || apiErr.Status != http.StatusTooManyRequests) {
						t.Fatalf("error %v is not the 429", err)
					}
					ok = err == nil
				}
				srv.Close()
				if ok != tt.wantOK || served.Load() != tt.wantServed {
					t.Errorf("raw=%v: ok %v after %d requests, want ok %v after %d", raw, ok, served.Load(), tt.wantOK, tt.wantServed)
				}
			}
		})
	}
}
