package smoke

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/internal/api"
)

// defaultIntervalSeconds is the collector's default push interval, assumed when a collector has not
// reported its own.
const defaultIntervalSeconds = 60

func checkMetricsFreshness(ctx context.Context, e *env) outcome {
	if o, ok := e.needAdmin(); !ok {
		return o
	}
	const path = client.APIPrefix + "/collectors"
	resp, err := e.admin.Do(ctx, client.RawRequest{Path: path})
	if err != nil {
		return fail("GET %s: %v", path, err)
	}
	if resp.Status != http.StatusOK {
		return fail("GET %s as admin answered %d: fix the collectors handler", path, resp.Status)
	}
	var cr api.CollectorsResponse
	if err := json.Unmarshal(resp.Body, &cr); err != nil {
		return fail("GET %s: decode: %v", path, err)
	}
	if len(cr.Collectors) == 0 {
		return skip("no collector registered: register and start one (pganalytics register, then pganalytics --config collector.toml)")
	}
	// Judge ages by the server's clock: the smoke host's clock may be off.
	now := time.Now()
	if d, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
		now = d
	}
	var stale []string
	fresh, never := 0, 0
	for _, c := range cr.Collectors {
		if c.LastPushAt == nil {
			never++
			continue
		}
		interval := c.IntervalSeconds
		if interval <= 0 {
			interval = defaultIntervalSeconds
		}
		// Date has one-second resolution; allow that much on top of two intervals.
		limit := time.Duration(2*interval*float64(time.Second)) + time.Second
		if age := now.Sub(*c.LastPushAt); age > limit {
			stale = append(stale, fmt.Sprintf("%s (last push %s ago, interval %gs)", c.Name, age.Round(time.Second), interval))
			continue
		}
		fresh++
	}
	if len(stale) > 0 {
		return fail("%d collector(s) silent for over two intervals: %s: check the collector service and its logs", len(stale), strings.Join(stale, ", "))
	}
	if fresh == 0 {
		return fail("none of %d registered collector(s) has pushed yet: start the collector (pganalytics --config collector.toml) and check its token", never)
	}
	msg := fmt.Sprintf("%d collector(s) pushed within two intervals", fresh)
	if never > 0 {
		msg += fmt.Sprintf("; %d registered but never pushed", never)
	}
	return pass("%s", msg)
}

// seedMetricsVolumeSQL is Phase 3 Step 8's "Verify metrics volume" query, verbatim.
const seedMetricsVolumeSQL = `SELECT
  DATE_TRUNC('minute', timestamp) as minute,
  COUNT(*) as metrics
FROM metrics
WHERE timestamp > now() - interval '1 hour'
GROUP BY minute
ORDER BY minute DESC;`

// seedPasswordHashSQL is Phase 2 Step 9's "Check password hashing in DB".
const seedPasswordHashSQL = `SELECT password_hash FROM users`

func connectDB(ctx context.Context, e *env) (*pgx.Conn, outcome, bool) {
	if e.cfg.DatabaseURL == "" {
		return nil, skip("no database URL: set PGACTL_DATABASE_URL to run the seed's SQL checks"), false
	}
	conn, err := pgx.Connect(ctx, e.cfg.DatabaseURL)
	if err != nil {
		return nil, fail("connect to the metrics database: %v: check PGACTL_DATABASE_URL", err), false
	}
	return conn, outcome{}, true
}

func checkSQLMetricsVolume(ctx context.Context, e *env) outcome {
	conn, o, ok := connectDB(ctx, e)
	if !ok {
		return o
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, seedMetricsVolumeSQL)
	if err != nil {
		return fail("metrics volume query: %v: run pganalytics-api migrate", err)
	}
	type minute struct {
		at    time.Time
		count int64
	}
	perMinute, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (minute, error) {
		var m minute
		err := r.Scan(&m.at, &m.count)
		return m, err
	})
	if err != nil {
		return fail("metrics volume query: %v", err)
	}
	if len(perMinute) == 0 {
		return fail("no metrics in the last hour: check collectors are pushing (pgactl replication, GET /api/v1/collectors)")
	}
	var total int64
	for _, m := range perMinute {
		if m.count <= 0 {
			return fail("minute %s has %d metrics: the metrics view is inconsistent", m.at.UTC().Format(time.RFC3339), m.count)
		}
		total += m.count
	}
	latest := perMinute[0]
	return pass("%d minute(s) with metrics in the last hour, %d samples, latest %s: %d/min", len(perMinute), total, latest.at.UTC().Format("15:04"), latest.count)
}

var (
	argon2idPHC = regexp.MustCompile(`^\$argon2id\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+={0,2}\$[A-Za-z0-9+/]+={0,2}$`)
	bcryptHash  = regexp.MustCompile(`^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$`)
)

func checkSQLPasswordHashes(ctx context.Context, e *env) outcome {
	conn, o, ok := connectDB(ctx, e)
	if !ok {
		return o
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, seedPasswordHashSQL)
	if err != nil {
		return fail("password hash query: %v: run pganalytics-api migrate", err)
	}
	hashes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fail("password hash query: %v", err)
	}
	if len(hashes) == 0 {
		return skip("the users table is empty: add a user (pganalytics-api user add NAME --role admin)")
	}
	bad := 0
	kinds := map[string]int{}
	for _, h := range hashes {
		switch {
		case argon2idPHC.MatchString(h):
			kinds["argon2id"]++
		case bcryptHash.MatchString(h):
			kinds["bcrypt"]++
		default:
			bad++
		}
	}
	if bad > 0 {
		// Never print the values: a failing row may be a plaintext password.
		return fail("%d of %d users have a password_hash that is not an argon2id or bcrypt PHC string: reset those passwords so they are hashed", bad, len(hashes))
	}
	names := make([]string, 0, len(kinds))
	for k, n := range kinds {
		names = append(names, fmt.Sprintf("%d %s", n, k))
	}
	slices.Sort(names)
	return pass("%d users, all hashed (%s)", len(hashes), strings.Join(names, ", "))
}
