package conn

import (
	"testing"
	"time"

	_ "github.com/charmbracelet/x/exp/golden" // accepts -update, which `go test ./tui/... -update` passes to every package
)

func TestBackoff(t *testing.T) {
	b := Backoff{Min: time.Second, Max: 5 * time.Second}
	var got []time.Duration
	for range 5 {
		got = append(got, b.Next())
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays %v, want %v", got, want)
		}
	}
	b.Reset()
	if b.Next() != time.Second {
		t.Error("Reset did not start over")
	}
}
