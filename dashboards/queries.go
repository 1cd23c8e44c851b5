package dashboards

import (
	"encoding/json"
	"fmt"
	"io/fs"
)

// Dashboard is what a dashboard asks of the database: its template variables and every SQL
// statement Grafana sends for it.
type Dashboard struct {
	File      string
	UID       string
	Title     string
	Variables []Variable
	Queries   []Query // variables first, then panel targets
}

// Variable is a template variable.
type Variable struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	Query      string `json:"query"`
	Multi      bool   `json:"multi"`
	IncludeAll bool   `json:"includeAll"`
}

// Query is one statement: a variable's query or a panel target.
type Query struct {
	Where    string // "variable name" or "panel Title/A"
	Variable string // the variable a variable query fills, else ""
	Format   string // time_series or table for a panel; "" for a variable
	SQL      string
}

type panelModel struct {
	Title   string `json:"title"`
	Targets []struct {
		RefID  string `json:"refId"`
		Format string `json:"format"`
		RawSQL string `json:"rawSql"`
	} `json:"targets"`
	Panels []panelModel `json:"panels"` // a collapsed row's panels
}

// Parse reads one dashboard's JSON model.
func Parse(file string, data []byte) (Dashboard, error) {
	var m struct {
		UID        string `json:"uid"`
		Title      string `json:"title"`
		Templating struct {
			List []Variable `json:"list"`
		} `json:"templating"`
		Panels []panelModel `json:"panels"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return Dashboard{}, fmt.Errorf("dashboard %s: %w", file, err)
	}
	d := Dashboard{File: file, UID: m.UID, Title: m.Title, Variables: m.Templating.List}
	for _, v := range m.Templating.List {
		if v.Type == "query" {
			d.Queries = append(d.Queries, Query{Where: "variable " + v.Name, Variable: v.Name, SQL: v.Query})
		}
	}
	var panels []panelModel
	for _, p := range m.Panels {
		panels = append(panels, p)
		panels = append(panels, p.Panels...)
	}
	for _, p := range panels {
		for _, tg := range p.Targets {
			d.Queries = append(d.Queries, Query{Where: "panel " + p.Title + "/" + tg.RefID, Format: tg.Format, SQL: tg.RawSQL})
		}
	}
	return d, nil
}

// Load parses every embedded dashboard, in file order.
func Load() ([]Dashboard, error) {
	files, err := fs.Glob(FS, "*.json")
	if err != nil {
		return nil, err
	}
	out := make([]Dashboard, 0, len(files))
	for _, f := range files {
		b, err := fs.ReadFile(FS, f)
		if err != nil {
			return nil, err
		}
		d, err := Parse(f, b)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}
