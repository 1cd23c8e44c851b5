package store_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/server/store"
)

func TestOpen(t *testing.T) {
	dsn, _ := migratedDB(t)
	s := openStore(t, dsn, store.Options{MaxConns: 2})
	if err := s.Ping(ctxT(t)); err != nil {
		t.Fatalf("ping: %v", err)
	}

	// A port nobody listens on: Open retries until ConnectTimeout, then says so.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	for _, tc := range []struct {
		name, dsn, want string
	}{
		{"malformed url", "postgres://%zz", "parse database url"},
		{"unreachable", "postgres://postgres:secret-pw@127.0.0.1:" + strconv.Itoa(closedPort) + "/x?sslmode=disable", "gave up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := store.Open(context.Background(), tc.dsn, store.Options{ConnectTimeout: 300 * time.Millisecond})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want an error mentioning %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret-pw") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}

	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := store.Open(ctx, "postgres://x@127.0.0.1:"+strconv.Itoa(closedPort)+"/x", store.Options{}); err == nil {
			t.Fatal("Open with a cancelled context succeeded")
		}
	})
}
