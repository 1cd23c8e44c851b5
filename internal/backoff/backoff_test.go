package backoff

import (
	"testing"
	"time"
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
	if d := b.Next(); d != time.Second {
		t.Fatalf("after Reset: %s, want 1s", d)
	}
	j := Backoff{Min: time.Second, Max: 8 * time.Second, Jitter: true}
	for i := 1; i <= 6; i++ {
		step := Step(time.Second, 8*time.Second, i)
		if d := j.Next(); d < step/2 || d > step {
			t.Fatalf("jittered delay %s outside [%s, %s]", d, step/2, step)
		}
	}
	if d := Jitter(4*time.Second, func(n time.Duration) time.Duration { return n - 1 }); d != 4*time.Second {
		t.Fatalf("the largest draw gives %s, want the step", d)
	}
	if d := Jitter(4*time.Second, func(time.Duration) time.Duration { return 0 }); d != 2*time.Second {
		t.Fatalf("the smallest draw gives %s, want half the step", d)
	}
}
