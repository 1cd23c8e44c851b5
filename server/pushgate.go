package server

import (
	"net/http"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// pushBusyRetryAfter is the Retry-After (seconds) of a push refused by the gate; collectors keep
// the batch and send it again.
const pushBusyRetryAfter = 2

// pushGate bounds what the pushes being taken may hold, whatever their bodies: at most
// perCollector pushes of one collector at once (beyond: 429), and at most budget decompressed bytes
// across all of them (beyond: 503), both with Retry-After. A push charges its body as it is read
// and gives it all back once it is stored or refused; what a push holds in memory (its decoded
// samples, the rows built from them) is proportional to the bytes it read.
type pushGate struct {
	perCollector int   // pushes at once
	share        int64 // bytes at once, for one collector
	budget       int64 // bytes at once, for all
	gauge        prometheus.Gauge

	mu     sync.Mutex
	active map[string]*collectorShare
	used   int64
}

type collectorShare struct {
	pushes int
	used   int64
}

// newPushGate: one collector may hold at most share bytes, so that one collector (its token
// stolen, say) cannot spend the whole budget and starve the others.
func newPushGate(perCollector int, share, budget int64, gauge prometheus.Gauge) *pushGate {
	return &pushGate{perCollector: perCollector, share: min(share, budget), budget: budget, gauge: gauge,
		active: make(map[string]*collectorShare)}
}

// pushTicket is one admitted push's share of the gate.
type pushTicket struct {
	g         *pushGate
	collector string
	share     *collectorShare
	charged   int64
}

// enter admits a push of collectorID, or answers why not.
func (g *pushGate) enter(collectorID string) (*pushTicket, *httpError) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.active[collectorID]
	if c == nil {
		c = &collectorShare{}
		g.active[collectorID] = c
	}
	if c.pushes >= g.perCollector {
		return nil, newError(http.StatusTooManyRequests, codeRateLimited,
			"%d pushes of this collector are being taken already: send one at a time", g.perCollector)
	}
	c.pushes++
	return &pushTicket{g: g, collector: collectorID, share: c}, nil
}

// charge takes n more bytes of the budget for t; false when the budget cannot hold them.
func (t *pushTicket) charge(n int64) bool {
	g := t.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.used+n > g.budget || t.share.used+n > g.share {
		return false
	}
	g.used += n
	t.share.used += n
	t.charged += n
	g.gauge.Set(float64(g.used))
	return true
}

// leave gives back everything t took.
func (t *pushTicket) leave() {
	g := t.g
	g.mu.Lock()
	defer g.mu.Unlock()
	g.used -= t.charged
	t.share.used -= t.charged
	t.charged = 0
	if t.share.pushes--; t.share.pushes <= 0 {
		delete(g.active, t.collector)
	}
	g.gauge.Set(float64(g.used))
}

// errPushMemory is the answer to a push the memory budget cannot hold now.
func errPushMemory() *httpError {
	return newError(http.StatusServiceUnavailable, codeServerBusy,
		"the server is decoding as many pushes as its memory allows: retry in %d s", pushBusyRetryAfter)
}

func setPushRetryAfter(w http.ResponseWriter) {
	w.Header().Set("Retry-After", strconv.Itoa(pushBusyRetryAfter))
}
