package server

import (
	"context"
	"sync"

	"github.com/pganalytics/pganalytics/internal/api"
)

// allCollectors, as a pending id, asks the worker to reload every collector's topology.
const allCollectors = ""

// subscriberBuffer is how many topology events a stream client may fall behind before it is cut
// off (it reconnects and starts again from the current state).
const subscriberBuffer = 64

// topologyHub fans the store's topology notifications out to the event-stream clients of this
// server. The store calls notify from its single LISTEN connection; notify only marks the collector
// pending, so the listener (and the pushes behind pg_notify) never wait for a client. One worker
// loads each pending collector's topology once, however many clients follow it.
type topologyHub struct {
	load    func(ctx context.Context, collectorID string) ([]api.CollectorTopology, error)
	onError func(error)
	onDrop  func()

	mu      sync.Mutex
	subs    map[*subscriber]struct{}
	pending map[string]struct{}
	closed  bool
	wake    chan struct{}
}

type subscriber struct {
	filter string // collector id, "" for all
	events chan api.CollectorTopology
	gone   chan struct{} // closed when the hub drops the subscriber (too slow, or shutdown)
}

func newTopologyHub(load func(context.Context, string) ([]api.CollectorTopology, error), onError func(error), onDrop func()) *topologyHub {
	return &topologyHub{
		load: load, onError: onError, onDrop: onDrop,
		subs: make(map[*subscriber]struct{}), pending: make(map[string]struct{}),
		wake: make(chan struct{}, 1),
	}
}

// notify records that collectorID pushed; it never blocks.
func (h *topologyHub) notify(collectorID string) {
	h.mu.Lock()
	if len(h.subs) == 0 || h.closed {
		h.mu.Unlock()
		return
	}
	h.pending[collectorID] = struct{}{}
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// run loads and publishes pending topologies until ctx ends.
func (h *topologyHub) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.wake:
		}
		h.mu.Lock()
		ids := make([]string, 0, len(h.pending))
		for id := range h.pending {
			ids = append(ids, id)
		}
		clear(h.pending)
		h.mu.Unlock()
		for _, id := range ids {
			tops, err := h.load(ctx, id)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				h.onError(err)
				continue
			}
			for _, t := range tops {
				h.publish(t)
			}
		}
	}
}

func (h *topologyHub) publish(t api.CollectorTopology) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs {
		if sub.filter != "" && sub.filter != t.CollectorID {
			continue
		}
		select {
		case sub.events <- t:
		default:
			h.dropLocked(sub)
			h.onDrop()
		}
	}
}

// subscribe registers a client; the returned func unregisters it. ok is false after shutdown began.
func (h *topologyHub) subscribe(filter string) (sub *subscriber, unsubscribe func(), ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, nil, false
	}
	sub = &subscriber{filter: filter, events: make(chan api.CollectorTopology, subscriberBuffer), gone: make(chan struct{})}
	h.subs[sub] = struct{}{}
	return sub, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[sub]; ok {
			h.dropLocked(sub)
		}
	}, true
}

func (h *topologyHub) dropLocked(sub *subscriber) {
	delete(h.subs, sub)
	close(sub.gone)
}

// close ends every stream (graceful shutdown) and refuses new subscribers.
func (h *topologyHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for sub := range h.subs {
		h.dropLocked(sub)
	}
}
