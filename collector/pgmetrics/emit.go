package pgmetrics

import (
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
)

// emitter accumulates samples that all carry the instance label and the collection time.
type emitter struct {
	instance string
	at       time.Time
	out      []api.Sample
}

// add appends one sample; kv are label name/value pairs.
func (e *emitter) add(name string, v float64, kv ...string) {
	labels := make(map[string]string, 1+len(kv)/2)
	labels["instance"] = e.instance
	for i := 0; i+1 < len(kv); i += 2 {
		labels[kv[i]] = kv[i+1]
	}
	e.out = append(e.out, api.Sample{Name: name, Value: v, Labels: labels, Timestamp: e.at})
}

// addOpt appends a sample only when the value is known.
func addOpt[T int64 | float64](e *emitter, name string, v *T, kv ...string) {
	if v != nil {
		e.add(name, float64(*v), kv...)
	}
}

func boolf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// nonNeg clamps a byte distance measured between two reads that may race (WAL moves on).
func nonNeg(v *int64) *int64 {
	if v == nil || *v >= 0 {
		return v
	}
	zero := int64(0)
	return &zero
}

// Samples turns a collection into catalog metrics. A down instance yields only pg_up 0 (and what
// its Patroni says).
func (s *State) Samples() []api.Sample {
	e := &emitter{instance: s.Address, at: s.CollectedAt}
	e.add("pg_up", boolf(s.Up))
	emitPatroni(e, s)
	if !s.Up {
		return e.out
	}
	s.Info.emit(e)
	if s.ReplicationFresh {
		emitReplicas(e, s.Replicas)
		emitSlots(e, s.Slots)
		emitSlotStats(e, s.SlotStats)
		if s.Info.InRecovery {
			emitReceiver(e, s.Receiver)
			emitReplay(e, s.Replay)
			emitConflicts(e, s.Conflicts)
		}
		emitSubscriptions(e, s.Subscriptions)
	}
	emitWALStats(e, s.WAL)
	emitWALDir(e, s.WALDir)
	emitArchiver(e, s.Archiver)
	emitDatabases(e, s.Databases)
	return e.out
}
