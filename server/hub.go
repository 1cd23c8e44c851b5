package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	load      func(ctx context.Context, collectorID string) ([]api.CollectorTopology, error)
	loadEvent func(ctx context.Context, id int64) (api.Event, error)
	onError   func(error)
	onDrop    func()

	maxStreams, perPrincipal int

	mu      sync.Mutex
	subs    map[*subscriber]struct{}
	streams map[string]int // subscribers per principal
	pending map[string]struct{}
	events  []int64 // replication events to publish, in announcement order
	closed  bool
	wake    chan struct{}
}

type subscriber struct {
	filter string        // collector id, "" for all
	key    string        // the principal it streams to, for the per-principal cap
	events chan []byte   // rendered SSE events, shared by every subscriber: never modified
	gone   chan struct{} // closed when the hub drops the subscriber (too slow, or shutdown)
}

func newTopologyHub(load func(context.Context, string) ([]api.CollectorTopology, error),
	loadEvent func(context.Context, int64) (api.Event, error), onError func(error), onDrop func(),
	maxStreams, perPrincipal int) *topologyHub {
	return &topologyHub{
		load: load, loadEvent: loadEvent, onError: onError, onDrop: onDrop, maxStreams: maxStreams, perPrincipal: perPrincipal,
		subs: make(map[*subscriber]struct{}), pending: make(map[string]struct{}), streams: make(map[string]int),
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
	h.poke()
}

// notifyEvent records that replication event id was stored; it never blocks.
func (h *topologyHub) notifyEvent(id int64) {
	h.mu.Lock()
	if len(h.subs) == 0 || h.closed || len(h.events) >= subscriberBuffer {
		h.mu.Unlock()
		return
	}
	h.events = append(h.events, id)
	h.mu.Unlock()
	h.poke()
}

func (h *topologyHub) poke() {
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
		events := h.events
		h.events = nil
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
				// Rendered once, the same bytes go to every subscriber.
				ev, err := topologyEvent(t)
				if err != nil {
					h.onError(err)
					continue
				}
				h.publish(t.CollectorID, ev)
			}
		}
		for _, id := range events {
			e, err := h.loadEvent(ctx, id)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				h.onError(err)
				continue
			}
			ev, err := renderSSE("replication_event", e)
			if err != nil {
				h.onError(err)
				continue
			}
			h.publish("", ev)
		}
	}
}

// topologyEvent renders one topology as an SSE event.
func topologyEvent(t api.CollectorTopology) ([]byte, error) {
	ev, err := renderSSE("topology", t)
	if err != nil {
		return nil, fmt.Errorf("render topology of collector %s: %w", t.CollectorID, err)
	}
	return ev, nil
}

// renderSSE renders v as one SSE event of type typ (JSON has no newlines, so one data line).
func renderSSE(typ string, v any) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("render %s event: %w", typ, err)
	}
	ev := make([]byte, 0, len(data)+len(typ)+len("event: \ndata: \n\n"))
	ev = append(ev, "event: "+typ+"\ndata: "...)
	ev = append(ev, data...)
	return append(ev, "\n\n"...), nil
}

// publish sends ev to every subscriber that follows collectorID; "" (a replication event, about a
// cluster rather than one collector) goes to the subscribers that follow every collector.
func (h *topologyHub) publish(collectorID string, ev []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs {
		if sub.filter != "" && sub.filter != collectorID {
			continue
		}
		select {
		case sub.events <- ev:
		default:
			h.dropLocked(sub)
			h.onDrop()
		}
	}
}

// Why subscribe refused a client.
var (
	errHubClosed        = errors.New("server shutting down")
	errTooManyStreams   = errors.New("too many event streams on this server")
	errPrincipalStreams = errors.New("too many event streams for this principal")
)

// subscribe registers a client of principal key; the returned func unregisters it. It refuses one
// after shutdown began (errHubClosed), beyond maxStreams in all (errTooManyStreams) and beyond
// perPrincipal for key (errPrincipalStreams).
func (h *topologyHub) subscribe(filter, key string) (sub *subscriber, unsubscribe func(), err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closed:
		return nil, nil, errHubClosed
	case len(h.subs) >= h.maxStreams:
		return nil, nil, errTooManyStreams
	case h.streams[key] >= h.perPrincipal:
		return nil, nil, errPrincipalStreams
	}
	sub = &subscriber{filter: filter, key: key, events: make(chan []byte, subscriberBuffer), gone: make(chan struct{})}
	h.subs[sub] = struct{}{}
	h.streams[key]++
	return sub, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[sub]; ok {
			h.dropLocked(sub)
		}
	}, nil
}

func (h *topologyHub) dropLocked(sub *subscriber) {
	delete(h.subs, sub)
	if h.streams[sub.key]--; h.streams[sub.key] <= 0 {
		delete(h.streams, sub.key)
	}
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
