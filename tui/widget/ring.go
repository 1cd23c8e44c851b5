package widget

// Ring keeps the last Cap values pushed into it, oldest dropped first, so per-standby history stays
// bounded however long the console runs.
type Ring[T any] struct {
	buf   []T
	start int
	n     int
}

// NewRing returns an empty ring holding at most capacity values (at least one).
func NewRing[T any](capacity int) *Ring[T] {
	return &Ring[T]{buf: make([]T, max(capacity, 1))}
}

// Push appends v, evicting the oldest value when full.
func (r *Ring[T]) Push(v T) {
	if r.n < len(r.buf) {
		r.buf[(r.start+r.n)%len(r.buf)] = v
		r.n++
		return
	}
	r.buf[r.start] = v
	r.start = (r.start + 1) % len(r.buf)
}

// Len is how many values the ring holds.
func (r *Ring[T]) Len() int { return r.n }

// Cap is the most values the ring holds.
func (r *Ring[T]) Cap() int { return len(r.buf) }

// Values copies the values out, oldest first.
func (r *Ring[T]) Values() []T {
	out := make([]T, r.n)
	for i := range r.n {
		out[i] = r.buf[(r.start+i)%len(r.buf)]
	}
	return out
}
