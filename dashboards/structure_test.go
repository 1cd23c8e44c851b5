package dashboards_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pganalytics/pganalytics/dashboards"
)

const (
	// wantDashboards is the deployment plan's count ("Verify 9 dashboards loaded").
	wantDashboards = 9
	// grafana7SchemaVersion is the dashboard schema of Grafana 7.0, the plan's oldest supported
	// Grafana; later versions migrate it on load.
	grafana7SchemaVersion = 25
	// datasourceRef is the dashboards' datasource variable: every query goes through it.
	datasourceRef = "$datasource"
)

// grafana7Panels are the panel types Grafana 7.0 ships (later versions migrate graph to timeseries).
var grafana7Panels = []string{"row", "graph", "stat", "table", "bargauge", "gauge", "text"}

// uidPattern is what Grafana accepts as a dashboard uid.
var uidPattern = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,40}$`)

// readsMetrics spots SQL reading the metrics view, which must honour the collector selection.
var readsMetrics = regexp.MustCompile(`(?i)\bFROM\s+metrics\b`)

func TestDashboards(t *testing.T) {
	ds := loadDashboards(t)
	if len(ds) != wantDashboards {
		t.Fatalf("found %d dashboards, want %d", len(ds), wantDashboards)
	}
	uids := map[string]string{}
	titles := map[string]string{}
	for _, d := range ds {
		t.Run(d.file, func(t *testing.T) {
			if !uidPattern.MatchString(d.UID) {
				t.Errorf("uid %q: want 1-40 of [a-zA-Z0-9_-]", d.UID)
			}
			if other, dup := uids[d.UID]; dup {
				t.Errorf("uid %q also used by %s", d.UID, other)
			}
			uids[d.UID] = d.file
			if d.Title == "" {
				t.Error("no title")
			}
			if other, dup := titles[d.Title]; dup {
				t.Errorf("title %q also used by %s", d.Title, other)
			}
			titles[d.Title] = d.file
			if d.SchemaVersion != grafana7SchemaVersion {
				t.Errorf("schemaVersion %d, want %d (Grafana 7.0)", d.SchemaVersion, grafana7SchemaVersion)
			}
			// A fixed id would clash with the target Grafana's own ids on import or provisioning.
			if id, ok := d.raw["id"]; !ok || id != nil {
				t.Errorf("id = %v, want null", id)
			}
			if !slices.Contains(d.Tags, "pganalytics") {
				t.Errorf("tags %v lack pganalytics (the dashboards' cross-links use it)", d.Tags)
			}
			checkVariables(t, d)
			checkPanels(t, d)
		})
	}
}

func checkVariables(t *testing.T, d dashboard) {
	t.Helper()
	ds, ok := d.variable("datasource")
	if !ok || ds.Type != "datasource" || ds.Query != "postgres" {
		t.Errorf("want a datasource variable of type postgres, got %+v", ds)
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		if v.Datasource != datasourceRef {
			t.Errorf("variable %s: datasource %q, want %q", v.Name, v.Datasource, datasourceRef)
		}
		// Grafana quotes a variable's values in SQL only when it is multi-value or include-all; the
		// queries use IN ($var), which needs the quotes.
		if !v.Multi && !v.IncludeAll {
			t.Errorf("variable %s: want multi or includeAll so that its values are quoted", v.Name)
		}
	}
	for _, q := range d.queries() {
		for _, name := range dashboards.VariableRefs(q.sql) {
			if _, ok := d.variable(name); !ok {
				t.Errorf("%s: uses undefined variable $%s", q.where, name)
			}
		}
		if readsMetrics.MatchString(q.sql) && !strings.Contains(q.sql, "($collector_id)") {
			t.Errorf("%s: reads metrics without filtering on $collector_id", q.where)
		}
	}
}

func checkPanels(t *testing.T, d dashboard) {
	t.Helper()
	ids := map[int]bool{}
	titles := map[string]bool{}
	var placed []panel
	for _, p := range d.allPanels() {
		if ids[p.ID] {
			t.Errorf("panel %q: id %d used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		if titles[p.Title] {
			t.Errorf("panel title %q used twice: readers (and the docs) tell panels apart by title", p.Title)
		}
		titles[p.Title] = true
		if !slices.Contains(grafana7Panels, p.Type) {
			t.Errorf("panel %q: type %q is not a Grafana 7.0 panel", p.Title, p.Type)
		}
		g := p.GridPos
		if g.W < 1 || g.H < 1 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		for _, o := range placed {
			if overlaps(o.GridPos, g) {
				t.Errorf("panel %q overlaps panel %q", p.Title, o.Title)
			}
		}
		placed = append(placed, p)
		if p.Type == "row" || p.Type == "text" {
			continue
		}
		if p.Title == "" {
			t.Errorf("panel %d has no title", p.ID)
		}
		if p.Datasource == nil || *p.Datasource != datasourceRef {
			t.Errorf("panel %q: datasource must be %q", p.Title, datasourceRef)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if refs[tg.RefID] || tg.RefID == "" {
				t.Errorf("panel %q: refId %q empty or repeated", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if !tg.RawQuery || strings.TrimSpace(tg.RawSQL) == "" {
				t.Errorf("panel %q/%s: want a raw SQL query", p.Title, tg.RefID)
			}
			if tg.Format != "time_series" && tg.Format != "table" {
				t.Errorf("panel %q/%s: format %q, want time_series or table", p.Title, tg.RefID, tg.Format)
			}
		}
	}
}

func overlaps(a, b gridPos) bool {
	return a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H
}

// provisionedName finds the datasource names in deploy/grafana/datasource.yml.
var provisionedName = regexp.MustCompile(`(?m)^  - name: (\S+)$`)

// TestDatasourceProvisioning checks that the provisioned datasource is the one the dashboards
// select by default, so that provisioned dashboards show data without a click.
func TestDatasourceProvisioning(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "deploy", "grafana", "datasource.yml"))
	if err != nil {
		t.Fatal(err)
	}
	names := provisionedName.FindAllStringSubmatch(string(b), -1)
	if len(names) != 1 {
		t.Fatalf("datasource.yml: want one datasource, found %d", len(names))
	}
	for _, d := range loadDashboards(t) {
		templating, _ := d.raw["templating"].(map[string]any)
		list, _ := templating["list"].([]any)
		for _, v := range list {
			v, _ := v.(map[string]any)
			if v["name"] != "datasource" {
				continue
			}
			current, _ := v["current"].(map[string]any)
			if current["value"] != names[0][1] {
				t.Errorf("%s: datasource variable defaults to %v, provisioned datasource is %s", d.file, current["value"], names[0][1])
			}
		}
	}
}
