package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

func TestSeriesKey(t *testing.T) {
	var b strings.Builder
	for _, tc := range []struct {
		name string
		a, b map[string]string
		same bool
	}{
		{"label order does not matter", map[string]string{"a": "1", "b": "2"}, map[string]string{"b": "2", "a": "1"}, true},
		{"nil and empty are one series", nil, map[string]string{}, true},
		{"values differ", map[string]string{"a": "1"}, map[string]string{"a": "2"}, false},
		{"no ambiguity between keys and values", map[string]string{"a": "b"}, map[string]string{"ab": ""}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ka := seriesKey(&b, "c", "m", tc.a)
			kb := seriesKey(&b, "c", "m", tc.b)
			if (ka == kb) != tc.same {
				t.Fatalf("%q vs %q: same = %v, want %v", ka, kb, ka == kb, tc.same)
			}
		})
	}
	if seriesKey(&b, "c1", "m", nil) == seriesKey(&b, "c2", "m", nil) {
		t.Fatal("collectors share a key")
	}
}

func TestSeriesCacheBounded(t *testing.T) {
	c := newSeriesCache(100)
	for i := range 1000 {
		c.add(map[string]int64{fmt.Sprint(i): int64(i)})
		if c.len() > 100 {
			t.Fatalf("cache grew to %d", c.len())
		}
	}
	keys := []string{"999", "nope"}
	ids := make([]int64, len(keys))
	missing := c.lookup(keys, ids)
	if len(missing) != 1 || missing[0] != 1 || ids[0] != 999 {
		t.Fatalf("lookup: missing %v ids %v", missing, ids)
	}
}

func TestSeriesCacheByID(t *testing.T) {
	var b strings.Builder
	c := newSeriesCache(100)
	for i := range 1000 {
		c.add(map[string]int64{seriesKey(&b, fmt.Sprint("c", i%2), "m", map[string]string{"i": fmt.Sprint(i)}): int64(i + 1)})
		if len(c.keys) != len(c.ids) {
			t.Fatalf("%d keys by id, %d ids by key", len(c.keys), len(c.ids))
		}
	}
	keys := make([]string, 3)
	missing := c.keysOf(seriesOwner("c1"), []int64{1000, 999, 1}, keys) // c1's, c0's, evicted
	if len(missing) != 2 || missing[0] != 1 || missing[1] != 2 {
		t.Fatalf("keysOf: missing %v", missing)
	}
	name, labels := parseSeriesKey(keys[0])
	if name != "m" || len(labels) != 1 || labels["i"] != "999" {
		t.Fatalf("parsed %q %v from %q", name, labels, keys[0])
	}
	if name, labels := parseSeriesKey(seriesKey(&b, "c", "pg_up", nil)); name != "pg_up" || labels != nil {
		t.Fatalf("parsed %q %v", name, labels)
	}
}

func TestFailureRatio(t *testing.T) {
	v := func(n int64) pgtype.Int8 { return pgtype.Int8{Int64: n, Valid: true} }
	var none pgtype.Int8
	for _, tc := range []struct {
		name               string
		coll, fail         int64
		baseColl, baseFail pgtype.Int8
		want               float64
	}{
		{"no failures", 100, 0, none, none, 0},
		{"since start", 200, 2, none, none, 1},
		{"since baseline", 200, 5, v(100), v(0), 5},
		{"counters reset", 50, 1, v(1000), v(0), 2},
		{"failures without collections", 100, 3, v(100), v(0), 100},
		{"idle", 100, 1, v(100), v(1), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := failureRatio(tc.coll, tc.fail, tc.baseColl, tc.baseFail); got != tc.want {
				t.Fatalf("failureRatio = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParsePartitionName(t *testing.T) {
	for _, tc := range []struct {
		name string
		day  time.Time
		ok   bool
	}{
		{"samples_p20260227", time.Date(2026, 2, 27, 0, 0, 0, 0, time.UTC), true},
		{"samples_p2026022", time.Time{}, false},
		{"samples_by_hand", time.Time{}, false},
		{"other_p20260227", time.Time{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, ok := parsePartitionName(tc.name)
			if ok != tc.ok || !d.Equal(tc.day) {
				t.Fatalf("= %v, %v", d, ok)
			}
			if ok && partitionName(d) != tc.name {
				t.Fatalf("round trip: %s", partitionName(d))
			}
		})
	}
}

func FuzzParseID(f *testing.F) {
	for _, s := range []string{"6f1c1b7e-9a43-4a8e-9f57-3d1f7f0b2a11", "6F1C1B7E-9A43-4A8E-9F57-3D1F7F0B2A11", "", "x",
		"6f1c1b7e9a434a8e9f573d1f7f0b2a11", "6f1c1b7e-9a43-4a8e-9f57-3d1f7f0b2a1z", "{6f1c1b7e-9a43-4a8e-9f57-3d1f7f0b2a11}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := parseID(s)
		if err != nil {
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("parseID(%q) = %v, want ErrNotFound", s, err)
			}
			return
		}
		if !id.Valid || !strings.EqualFold(id.String(), s) {
			t.Fatalf("parseID(%q) = %s", s, id.String())
		}
	})
}
