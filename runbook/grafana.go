package runbook

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pganalytics/pganalytics/dashboards"
)

// DefaultGrafanaRole is the datasource's read-only role (deploy/grafana/grafana_reader.sql).
const DefaultGrafanaRole = "grafana_reader"

// grafanaRange is the dashboards' default time range, which the check queries over.
const grafanaRange = time.Hour

// checkGrafana proves "dashboards showing data" on the live store: as the Grafana datasource's
// role, every shipped dashboard's variable queries run first (their values fill the panels' as a
// viewer's "All" would), then every panel query, expanded as Grafana 7 does for the last hour.
// Every query must run (a missing grant, a renamed column fail it) and every dashboard must show
// data in some panel; the panels without data are listed.
func (e *Engine) checkGrafana(ctx context.Context, s *Step, out *lineWriter) error {
	ds, err := dashboards.Load()
	if err != nil {
		return fmt.Errorf("shipped dashboards: %w", err)
	}
	conn, label, err := e.connect(ctx, s.databaseRef())
	if err != nil {
		return err
	}
	defer closeConn(conn)
	role := DefaultGrafanaRole
	if s.Role != "" {
		if role, err = e.env.expandStep(s.Role); err != nil {
			return fmt.Errorf("role: %w", err)
		}
	}
	if err := actAs(ctx, conn, role); err != nil {
		return fmt.Errorf("%s: %w (create it with deploy/grafana/grafana_reader.sql)", label, err)
	}
	now := time.Now()
	var problems []string
	total, withData := 0, 0
	for _, d := range ds {
		vars := dashboards.Vars{Interval: time.Minute, From: now.Add(-grafanaRange), To: now,
			Values: map[string][]string{}, Multi: map[string]bool{}}
		for _, v := range d.Variables {
			vars.Multi[v.Name] = v.Multi || v.IncludeAll
		}
		var empty []string
		panelsWithData := 0
	queries:
		for _, q := range d.Queries {
			total++
			for _, ref := range dashboards.VariableRefs(q.SQL) {
				if vals, ok := vars.Values[ref]; ok && len(vals) == 0 {
					// Grafana shows "None" for the variable and nothing in the panel; so do we.
					empty = append(empty, q.Where+" (no $"+ref+")")
					continue queries
				}
			}
			sql, err := dashboards.Expand(q.SQL, vars)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s %s: %v", d.File, q.Where, err))
				continue
			}
			res, err := query(ctx, conn, sql)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s %s: %v", d.File, q.Where, err))
				continue
			}
			if q.Variable != "" {
				vars.Values[q.Variable] = variableValues(res)
			}
			switch {
			case len(res.rows) == 0:
				empty = append(empty, q.Where)
			case q.Variable == "":
				panelsWithData++
			}
		}
		withData += panelsWithData
		line := fmt.Sprintf("%s (%s): %d queries, %d panels with data", d.File, d.Title, len(d.Queries), panelsWithData)
		if len(empty) > 0 {
			// Panels of conditions that did not occur in the hour (errors, conflicts, an inactive
			// slot) rightly show nothing; they are listed for the person reading the run.
			line += "; no data yet: " + strings.Join(empty, ", ")
		}
		out.println(line)
		if panelsWithData == 0 {
			problems = append(problems, fmt.Sprintf("%s: no panel shows data", d.File))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("grafana: as %s: %s", role, strings.Join(problems, "; "))
	}
	out.println(fmt.Sprintf("%d dashboards, %d queries as %s on %s: every query runs, %d panels show data, every dashboard has some",
		len(ds), total, role, label, withData))
	return nil
}

// actAs makes the session the role's: SET ROLE when connected as a member (an administrator
// running the check), nothing when connected as the role itself.
func actAs(ctx context.Context, conn *pgx.Conn, role string) error {
	var current string
	if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&current); err != nil {
		return err
	}
	if current == role {
		return nil
	}
	if _, err := conn.Exec(ctx, "SET ROLE "+pgx.Identifier{role}.Sanitize()); err != nil {
		return fmt.Errorf("act as role %s: %w", role, err)
	}
	return nil
}

// variableValues are a variable query's values: its __value column, else its first.
func variableValues(res *result) []string {
	col := 0
	for i, c := range res.cols {
		if c == "__value" {
			col = i
		}
	}
	var out []string
	for _, row := range res.rows {
		out = append(out, row[col])
	}
	return out
}
