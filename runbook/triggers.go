package runbook

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// triggerWindow is how far back the rollback triggers look.
const triggerWindow = 15 * time.Minute

// The plan's thresholds.
const (
	maxFailedAuthFraction = 0.10             // "> 10% failed authentication"
	minAuthAttempts       = 10               // below this many attempts a fraction means nothing
	maxDBErrorsPerMinute  = 5                // "DB connection errors > 5/min"
	stalePushIntervals    = 3                // a collector silent this many intervals is "unable to push",
	minStalePush          = 10 * time.Second // and at least this long: a short interval on a busy machine is no outage
)

// trigger is one of the plan's rollback trigger conditions, evaluated.
type trigger struct {
	name     string
	tripped  bool
	evidence string
}

// checkRollbackTriggers evaluates the plan's six rollback trigger conditions over the last 15
// minutes from the API servers and the metrics store, prints each with its evidence, and fails
// when one trips, naming it and offering the rollback phase.
func (e *Engine) checkRollbackTriggers(ctx context.Context, s *Step, out *lineWriter) error {
	var triggers []trigger
	triggers = append(triggers, e.apiTrigger(ctx, s))
	conn, label, err := e.connect(ctx, s.databaseRef())
	if err != nil {
		return err
	}
	defer closeConn(conn)
	store, err := storeTriggers(ctx, conn)
	if err != nil {
		return fmt.Errorf("rollback triggers on %s: %w", label, err)
	}
	triggers = append(triggers, store...)
	var tripped []string
	for _, t := range triggers {
		mark := "ok     "
		if t.tripped {
			mark = "TRIPPED"
			tripped = append(tripped, t.name+" ("+t.evidence+")")
		}
		out.println(fmt.Sprintf("%s  %-38s %s", mark, t.name, t.evidence))
	}
	if len(tripped) > 0 {
		return fmt.Errorf("rollback trigger tripped: %s; to roll back: pgactl rollback --env %s", strings.Join(tripped, "; "), e.env.Name)
	}
	return nil
}

// apiTrigger: "API service crashes repeatedly", as far as one look can tell: every API server
// answers ready. (A watch repeats the look; a server down at any round trips it.)
func (e *Engine) apiTrigger(ctx context.Context, s *Step) trigger {
	t := trigger{name: "API service crashes repeatedly"}
	var servers []Server
	if s.Servers != "" {
		var err error
		if servers, err = e.servers(s); err != nil {
			t.tripped, t.evidence = true, err.Error()
			return t
		}
	} else {
		base, err := e.env.expandStep(s.URL)
		if err != nil {
			t.tripped, t.evidence = true, err.Error()
			return t
		}
		servers = []Server{{Name: "api", URL: strings.TrimRight(base, "/")}}
	}
	var down, up []string
	for _, srv := range servers {
		c, err := e.serverClient(srv)
		if err == nil && e.env.LoopbackOnly {
			err = checkLoopbackURL(srv.URL)
		}
		if err != nil {
			down = append(down, srv.Name+": "+err.Error())
			continue
		}
		p, status, err := c.Ready(ctx)
		switch {
		case err != nil:
			down = append(down, srv.Name+": unreachable")
		case status != http.StatusOK:
			down = append(down, srv.Name+": "+p.Status)
		default:
			up = append(up, srv.Name)
		}
	}
	if len(down) > 0 {
		t.tripped, t.evidence = true, "not ready: "+strings.Join(down, ", ")
	} else {
		t.evidence = "ready: " + strings.Join(up, ", ")
	}
	return t
}

// storeTriggers are the five conditions the metrics store answers.
func storeTriggers(ctx context.Context, conn *pgx.Conn) ([]trigger, error) {
	since := time.Now().Add(-triggerWindow)
	var out []trigger

	// Metrics data loss: a collector dropped batches (full spool) or had batches refused.
	var lost float64
	var lossBy []string
	rows, err := conn.Query(ctx, `
		SELECT c.name, max(m.value) - min(m.value) AS lost
		FROM metrics m JOIN collectors c ON c.id::text = m.collector_id::text
		WHERE m.timestamp > $1
		  AND m.name IN ('pganalytics_collector_buffer_dropped_total', 'pganalytics_collector_rejected_batches_total')
		GROUP BY c.name, m.name HAVING max(m.value) > min(m.value)`, since)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var name string
		var n float64
		if err := rows.Scan(&name, &n); err != nil {
			rows.Close()
			return nil, err
		}
		lost += n
		lossBy = append(lossBy, fmt.Sprintf("%s %.0f", name, n))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	loss := trigger{name: "Metrics data loss detected", evidence: "no batch dropped or refused"}
	if lost > 0 {
		loss.tripped, loss.evidence = true, fmt.Sprintf("%.0f batches dropped or refused: %s", lost, strings.Join(lossBy, ", "))
	}
	out = append(out, loss)

	// Security breach discovered: what the store can see of one, a refresh token replayed (its
	// family is revoked); a person decides about the rest.
	var replays int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE at > $1 AND action = 'refresh_reused'`, since).Scan(&replays); err != nil {
		return nil, err
	}
	breach := trigger{name: "Security breach discovered", evidence: "no refresh token replayed"}
	if replays > 0 {
		breach.tripped, breach.evidence = true, fmt.Sprintf("%d refresh token replays (audit action refresh_reused)", replays)
	}
	out = append(out, breach)

	// > 10 % failed authentication.
	var ok, failed int
	if err := conn.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE action = 'login'), count(*) FILTER (WHERE action = 'login_failed')
		FROM audit_log WHERE at > $1 AND action IN ('login', 'login_failed')`, since).Scan(&ok, &failed); err != nil {
		return nil, err
	}
	auth := trigger{name: "> 10% failed authentication", evidence: fmt.Sprintf("%d of %d logins failed", failed, ok+failed)}
	if n := ok + failed; n >= minAuthAttempts && float64(failed) > maxFailedAuthFraction*float64(n) {
		auth.tripped = true
		auth.evidence += fmt.Sprintf(" (%.0f %%)", 100*float64(failed)/float64(n))
	}
	out = append(out, auth)

	// DB connection errors > 5/min, summed over the API servers, in the worst minute.
	var worst int64
	if err := conn.QueryRow(ctx, `
		SELECT coalesce(max(errors), 0) FROM (
			SELECT sum(db_errors) AS errors FROM request_stats WHERE minute > $1 GROUP BY minute) m`, since).Scan(&worst); err != nil {
		return nil, err
	}
	db := trigger{name: "DB connection errors > 5/min", evidence: fmt.Sprintf("worst minute: %d database errors", worst)}
	db.tripped = worst > maxDBErrorsPerMinute
	out = append(out, db)

	// Collectors unable to push: registered collectors silent for several intervals.
	rows, err = conn.Query(ctx, `
		SELECT name, coalesce(extract(epoch FROM now() - last_push_at), -1), interval_seconds
		FROM collectors WHERE deleted_at IS NULL ORDER BY name`)
	if err != nil {
		return nil, err
	}
	var silent []string
	total := 0
	for rows.Next() {
		var name string
		var age, interval float64
		if err := rows.Scan(&name, &age, &interval); err != nil {
			rows.Close()
			return nil, err
		}
		total++
		switch {
		case age < 0:
			silent = append(silent, name+" never pushed")
		case interval > 0 && age > max(stalePushIntervals*interval, minStalePush.Seconds()):
			silent = append(silent, fmt.Sprintf("%s silent %.0fs (interval %.0fs)", name, age, interval))
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	push := trigger{name: "Collectors unable to push", evidence: fmt.Sprintf("all %d collectors pushed within %d intervals (%s at least)", total, stalePushIntervals, minStalePush)}
	if len(silent) > 0 {
		push.tripped, push.evidence = true, strings.Join(silent, ", ")
	}
	out = append(out, push)
	return out, nil
}
