package pgmetrics

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Receiver is a standby's pg_stat_wal_receiver row. A standby without a running receiver (streaming
// broken, or recovering from the archive only) has a Receiver with an empty Status.
type Receiver struct {
	Status            string // streaming, waiting, stopping, … ("" when no receiver runs)
	ReceivedTimeline  int64
	LastMsgAgeSeconds *float64
	SlotName          string
	SenderHost        string
	SenderPort        int
	Conninfo          string // the connection string it uses, password obfuscated by the server
}

// Connected says WAL is streaming in.
func (r *Receiver) Connected() bool { return r != nil && r.Status == "streaming" }

// The view has the same columns on 13-18 (sender_host/sender_port since 11, flushed_lsn since 13).
// Without pg_read_all_stats every column but pid is NULL: status tells.
const receiverSQL = `
SELECT status, COALESCE(received_tli, 0)::bigint,
       EXTRACT(epoch FROM now() - last_msg_receipt_time)::float8,
       COALESCE(slot_name, ''), COALESCE(sender_host, ''), COALESCE(sender_port, 0), COALESCE(conninfo, '')
FROM pg_stat_wal_receiver`

func collectReceiver(ctx context.Context, _ *Target, q querier, st *State) error {
	r := &Receiver{}
	var status *string
	err := q.QueryRow(ctx, receiverSQL).Scan(&status, &r.ReceivedTimeline, &r.LastMsgAgeSeconds,
		&r.SlotName, &r.SenderHost, &r.SenderPort, &r.Conninfo)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		st.Receiver = r
		return nil
	case err != nil:
		return err
	case status == nil:
		return fmt.Errorf("pg_stat_wal_receiver: %w", errHiddenStats)
	}
	r.Status = *status
	st.Receiver = r
	return nil
}

func emitReceiver(e *emitter, r *Receiver) {
	if r == nil {
		return
	}
	e.add("pg_wal_receiver_connected", boolf(r.Connected()))
	if r.Status == "" {
		return
	}
	e.add("pg_wal_receiver_received_timeline", float64(r.ReceivedTimeline))
	addOpt(e, "pg_wal_receiver_last_msg_age_seconds", r.LastMsgAgeSeconds)
}

// Replay is a standby's own view of how far replay trails what it received.
type Replay struct {
	ReceiveReplayLagBytes *int64   // received - replayed; nil when nothing was streamed since startup
	DelaySeconds          *float64 // 0 when replay has caught up with what was received, else now - last replayed commit
	LastReplayAgeSeconds  *float64 // now - pg_last_xact_replay_timestamp(), raw: never zeroed
	Paused                bool
}

// An idle primary makes the last replayed commit old on a perfectly healthy standby, so the delay
// is zeroed when replay has caught up with what was received; the raw age is kept alongside so a
// standby whose receiver broke (nothing received, nothing replayed, the age grows) stays visible.
// The pause state function exists since 14; 13 only has the boolean.
const replaySQL = `
SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint,
       CASE WHEN pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0
            ELSE EXTRACT(epoch FROM now() - pg_last_xact_replay_timestamp()) END::float8,
       EXTRACT(epoch FROM now() - pg_last_xact_replay_timestamp())::float8,
       %s`

func replayQuery(i ServerInfo) string {
	if i.VersionNum >= 140000 {
		return fmt.Sprintf(replaySQL, "pg_get_wal_replay_pause_state() <> 'not paused'")
	}
	return fmt.Sprintf(replaySQL, "pg_is_wal_replay_paused()")
}

func collectReplay(ctx context.Context, _ *Target, q querier, st *State) error {
	r := &Replay{}
	if err := q.QueryRow(ctx, replayQuery(st.Info)).Scan(&r.ReceiveReplayLagBytes, &r.DelaySeconds,
		&r.LastReplayAgeSeconds, &r.Paused); err != nil {
		return err
	}
	r.ReceiveReplayLagBytes = nonNeg(r.ReceiveReplayLagBytes)
	st.Replay = r
	return nil
}

func emitReplay(e *emitter, r *Replay) {
	if r == nil {
		return
	}
	addOpt(e, "pg_standby_receive_replay_lag_bytes", r.ReceiveReplayLagBytes)
	addOpt(e, "pg_standby_replay_delay_seconds", r.DelaySeconds)
	addOpt(e, "pg_standby_last_replay_age_seconds", r.LastReplayAgeSeconds)
	e.add("pg_standby_replay_paused", boolf(r.Paused))
}
