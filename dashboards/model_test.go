package dashboards_test

import (
	"encoding/json"
	"io/fs"
	"testing"

	"github.com/pganalytics/pganalytics/dashboards"
)

// dashboard is the part of Grafana's dashboard JSON model the tests check.
type dashboard struct {
	file          string
	raw           map[string]any
	parsed        dashboards.Dashboard
	UID           string   `json:"uid"`
	Title         string   `json:"title"`
	Tags          []string `json:"tags"`
	SchemaVersion int      `json:"schemaVersion"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type variable struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	Query      string `json:"query"`
	Datasource string `json:"datasource"`
	Multi      bool   `json:"multi"`
	IncludeAll bool   `json:"includeAll"`
}

type panel struct {
	ID         int      `json:"id"`
	Type       string   `json:"type"`
	Title      string   `json:"title"`
	Datasource *string  `json:"datasource"`
	GridPos    gridPos  `json:"gridPos"`
	Targets    []target `json:"targets"`
	Panels     []panel  `json:"panels"` // a collapsed row's panels
}

type gridPos struct {
	H int `json:"h"`
	W int `json:"w"`
	X int `json:"x"`
	Y int `json:"y"`
}

type target struct {
	RefID    string `json:"refId"`
	Format   string `json:"format"`
	RawQuery bool   `json:"rawQuery"`
	RawSQL   string `json:"rawSql"`
}

// query is one SQL statement Grafana sends: a panel target or a variable's query.
type query struct {
	where  string // "panel Title/A" or "variable name"
	format string // time_series, table; "" for a variable
	sql    string
}

// loadDashboards parses every embedded dashboard, failing the test on unreadable JSON.
func loadDashboards(t *testing.T) []dashboard {
	t.Helper()
	files, err := fs.Glob(dashboards.FS, "*.json")
	if err != nil {
		t.Fatal(err)
	}
	out := make([]dashboard, 0, len(files))
	for _, f := range files {
		b, err := fs.ReadFile(dashboards.FS, f)
		if err != nil {
			t.Fatal(err)
		}
		d := dashboard{file: f}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := json.Unmarshal(b, &d.raw); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if d.parsed, err = dashboards.Parse(f, b); err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

// allPanels flattens rows: the panels of a collapsed row live inside it.
func (d dashboard) allPanels() []panel {
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// queries lists every SQL statement of the dashboard (dashboards.Parse): variables first, then
// panel targets.
func (d dashboard) queries() []query {
	var out []query
	for _, q := range d.parsed.Queries {
		out = append(out, query{where: q.Where, format: q.Format, sql: q.SQL})
	}
	return out
}

func (d dashboard) variable(name string) (variable, bool) {
	for _, v := range d.Templating.List {
		if v.Name == name {
			return v, true
		}
	}
	return variable{}, false
}
