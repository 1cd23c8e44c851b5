package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

func TestBurstThenRefuse(t *testing.T) {
	l := New(100, 1000)
	now := time.Unix(1_700_000_000, 0)
	for i := 1; i <= 100; i++ {
		d := l.Allow("ip:1.2.3.4", now)
		if !d.Allowed {
			t.Fatalf("request %d refused", i)
		}
		if d.Remaining != 100-i || d.Limit != 100 {
			t.Fatalf("request %d: remaining %d limit %d", i, d.Remaining, d.Limit)
		}
	}
	d := l.Allow("ip:1.2.3.4", now)
	if d.Allowed || d.Remaining != 0 {
		t.Fatalf("101st allowed: %+v", d)
	}
	if d.RetryAfter != 600*time.Millisecond { // one token at 100/min
		t.Fatalf("retry after %s", d.RetryAfter)
	}
	if !l.Allow("ip:5.6.7.8", now).Allowed {
		t.Fatal("another key must have its own bucket")
	}
	if !l.Allow("ip:1.2.3.4", now.Add(600*time.Millisecond)).Allowed {
		t.Fatal("a token must be back after 600ms")
	}
}

func TestIdleBucketsEvicted(t *testing.T) {
	l := New(10, 1000)
	now := time.Unix(1_700_000_000, 0)
	for i := range 50 {
		l.Allow(fmt.Sprintf("k%d", i), now)
	}
	if l.Len() != 50 {
		t.Fatalf("len %d", l.Len())
	}
	later := now.Add(2 * time.Minute)
	l.Allow("fresh", later)
	if l.Len() != 1 {
		t.Fatalf("idle buckets kept: len %d", l.Len())
	}
	if l.Saturated(later) {
		t.Fatal("idle eviction is not saturation")
	}
}

func TestTableBounded(t *testing.T) {
	l := New(10, 100)
	now := time.Unix(1_700_000_000, 0)
	for i := range 1000 {
		l.Allow(fmt.Sprintf("k%d", i), now)
		if l.Len() > 100 {
			t.Fatalf("table grew to %d", l.Len())
		}
	}
	if !l.Saturated(now) {
		t.Fatal("forced eviction must report saturation")
	}
	if l.Saturated(now.Add(2 * time.Minute)) {
		t.Fatal("saturation must clear after a refill period")
	}
}

func BenchmarkAllow(b *testing.B) {
	l := New(1_000_000, 100_000)
	now := time.Now()
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("collector:%d", i)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		l.Allow(keys[i%len(keys)], now)
	}
}
