package sender

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
)

// maxSeriesIDs bounds the ids remembered: far more series than a collector keeps live (each
// instance has about a hundred); past it they are all forgotten and learnt again.
const maxSeriesIDs = 100_000

// seriesIDs remembers the series ids the API hands back for the samples a push sends by name, so
// that later pushes send those series by id: values only, no names or labels for the API to
// decode and look up. Batches stay spooled as they were collected, by name; a batch is rewritten
// for each attempt, and sent as spooled whenever the API does not take the ids. Not safe for
// concurrent use: the sender delivers one batch at a time (Run, then Flush).
type seriesIDs struct {
	ids map[string]int64
	zw  *gzip.Writer // reused: its compressor state is most of what a rewrite allocates
}

func newSeriesIDs() *seriesIDs { return &seriesIDs{ids: make(map[string]int64)} }

// batch is a spooled push with what the sender passes through untouched left undecoded.
type batch struct {
	CollectedAt time.Time          `json:"collected_at"`
	Metrics     []api.Sample       `json:"metrics,omitempty"`
	ByID        *api.SeriesSamples `json:"by_id,omitempty"`
	Snapshot    json.RawMessage    `json:"snapshot,omitempty"`
	Status      json.RawMessage    `json:"status,omitempty"`
}

// plan is how one attempt sends a batch.
type plan struct {
	body  []byte   // what to send: the spooled body, or it rewritten with samples by id
	keys  []string // the series keys of the samples the body sends by name, in order
	byID  int      // how many samples it sends by id
	whole []string // the keys of every sample of the spooled body, for sending it as spooled
}

// plan decodes a spooled gzip JSON batch and, if it holds samples of known series, rewrites it to
// send those by id. A body it cannot read is sent as it is, for the API to judge.
func (c *seriesIDs) plan(spooled []byte) plan {
	p := plan{body: spooled}
	zr, err := gzip.NewReader(bytes.NewReader(spooled))
	if err != nil {
		return p
	}
	var b batch
	if err := json.NewDecoder(zr).Decode(&b); err != nil || b.ByID != nil {
		return p
	}
	p.whole = make([]string, len(b.Metrics))
	var key strings.Builder
	for i := range b.Metrics {
		p.whole[i] = seriesKey(&key, &b.Metrics[i])
	}
	p.keys = p.whole
	by := &api.SeriesSamples{}
	named := b.Metrics[:0:0]
	var keys []string
	ownTime := false
	for i, m := range b.Metrics {
		id, ok := c.ids[p.whole[i]]
		if !ok {
			named = append(named, m)
			keys = append(keys, p.whole[i])
			continue
		}
		ts := m.Timestamp
		if ts.IsZero() {
			ts = b.CollectedAt
		}
		ownTime = ownTime || !ts.Equal(b.CollectedAt)
		by.SeriesIDs = append(by.SeriesIDs, id)
		by.Values = append(by.Values, m.Value)
		by.TimestampsMS = append(by.TimestampsMS, ts.UnixMilli())
	}
	if by.Len() == 0 {
		return p
	}
	if !ownTime {
		by.TimestampsMS = nil // every sample at collected_at
	}
	b.Metrics, b.ByID = named, by
	body, err := c.gzipJSON(b)
	if err != nil {
		return p
	}
	p.body, p.keys, p.byID = body, keys, by.Len()
	return p
}

// learn records the ids an answer handed back for the samples sent by name (keys, in order).
func (c *seriesIDs) learn(keys []string, ids []int64) {
	if len(ids) != len(keys) {
		return // an API that hands back no ids (or not these): nothing to learn
	}
	if len(c.ids)+len(keys) > maxSeriesIDs {
		clear(c.ids)
	}
	for i, id := range ids {
		if id > 0 {
			c.ids[keys[i]] = id
		}
	}
}

// forget drops every id: the API did not take them (its store is another, or it does not know
// series ids at all).
func (c *seriesIDs) forget() { clear(c.ids) }

// seriesKey is a sample's series identity: its name and its labels sorted by name, NUL-separated
// (NUL is refused in names and labels).
func seriesKey(b *strings.Builder, s *api.Sample) string {
	b.Reset()
	b.WriteString(s.Name)
	names := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		b.WriteByte(0)
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(s.Labels[k])
	}
	return b.String()
}

// gzipJSON encodes v as gzip JSON, on the reused writer.
func (c *seriesIDs) gzipJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	if c.zw == nil {
		c.zw = gzip.NewWriter(&buf)
	} else {
		c.zw.Reset(&buf)
	}
	if err := json.NewEncoder(c.zw).Encode(v); err != nil {
		return nil, fmt.Errorf("encode batch: %w", err)
	}
	if err := c.zw.Close(); err != nil {
		return nil, fmt.Errorf("compress batch: %w", err)
	}
	return buf.Bytes(), nil
}
