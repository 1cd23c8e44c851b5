package store

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// defaultSeriesCacheSize bounds the series-id cache: at ~150 bytes a key, 200k series is ~30 MiB,
// far more than the series a fleet of collectors keeps live.
const defaultSeriesCacheSize = 200_000

// seriesCache maps a series identity (see seriesKey) to its id, and back. Ids never change and
// series are never deleted, so a cached id stays valid; when the cache is full an arbitrary tenth
// is evicted.
type seriesCache struct {
	mu   sync.Mutex
	max  int
	ids  map[string]int64
	keys map[int64]string // the same entries by id: the key strings are shared, not copied
}

func newSeriesCache(max int) *seriesCache {
	return &seriesCache{max: max, ids: make(map[string]int64), keys: make(map[int64]string)}
}

// keysOf fills keys[i] for every ids[i] that is a cached series of the collector whose keys start
// with owner (its id and a NUL) and returns the indexes it could not fill: not cached, or another
// collector's.
func (c *seriesCache) keysOf(owner string, ids []int64, keys []string) (missing []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, id := range ids {
		k, ok := c.keys[id]
		if !ok || !strings.HasPrefix(k, owner) {
			missing = append(missing, i)
			continue
		}
		keys[i] = k
	}
	return missing
}

// lookup fills ids[i] for every cached keys[i] and returns the indexes it could not fill.
func (c *seriesCache) lookup(keys []string, ids []int64) (missing []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, k := range keys {
		id, ok := c.ids[k]
		if !ok {
			missing = append(missing, i)
			continue
		}
		ids[i] = id
	}
	return missing
}

func (c *seriesCache) add(entries map[string]int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ids)+len(entries) > c.max {
		evict := len(c.ids) + len(entries) - c.max + c.max/10
		for k := range c.ids {
			if evict <= 0 {
				break
			}
			delete(c.keys, c.ids[k])
			delete(c.ids, k)
			evict--
		}
	}
	for k, id := range entries {
		c.ids[k] = id
		c.keys[id] = k
	}
}

func (c *seriesCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ids)
}

// seriesKey is a series' identity as a map key: collector, name and the labels sorted by key.
// NUL cannot occur in PostgreSQL text, so it separates unambiguously.
//
// The key is built at its exact size: cached keys are most of the server's live heap, and a
// builder left to grow would keep up to twice the bytes alive.
func seriesKey(b *strings.Builder, collectorID, name string, labels map[string]string) string {
	b.Reset()
	size := len(collectorID) + 1 + len(name)
	for k, v := range labels {
		size += 2 + len(k) + len(v)
	}
	b.Grow(size)
	b.WriteString(collectorID)
	b.WriteByte(0)
	b.WriteString(name)
	if len(labels) > 0 {
		keys := make([]string, 0, len(labels))
		for k := range labels {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			b.WriteByte(0)
			b.WriteString(k)
			b.WriteByte(0)
			b.WriteString(labels[k])
		}
	}
	return b.String()
}

// seriesOwner is the prefix of the keys of a collector's series.
func seriesOwner(collectorID string) string { return collectorID + "\x00" }

// parseSeriesKey is seriesKey's inverse: the series' name and labels.
func parseSeriesKey(key string) (name string, labels map[string]string) {
	parts := strings.Split(key, "\x00")
	if len(parts) < 2 {
		return "", nil
	}
	name = parts[1]
	if len(parts) > 3 {
		labels = make(map[string]string, (len(parts)-2)/2)
		for i := 2; i+1 < len(parts); i += 2 {
			labels[parts[i]] = parts[i+1]
		}
	}
	return name, labels
}

// partitionCache remembers which day partitions of samples are known to exist, keyed by the day's
// Unix time at UTC midnight.
type partitionCache struct {
	mu   sync.Mutex
	days map[int64]struct{}
}

func newPartitionCache() *partitionCache { return &partitionCache{days: make(map[int64]struct{})} }

func (c *partitionCache) has(day time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.days[day.Unix()]
	return ok
}

func (c *partitionCache) add(day time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.days[day.Unix()] = struct{}{}
}

func (c *partitionCache) remove(day time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.days, day.Unix())
}

func (c *partitionCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.days)
}
