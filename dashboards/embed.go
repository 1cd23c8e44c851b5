// Package dashboards holds pgAnalytics' Grafana dashboards, one JSON model per file, for a
// PostgreSQL datasource pointing at the metrics store (docs/dashboards.md). Grafana provisions them
// from a directory; FS gives Go code the very same files.
package dashboards

import "embed"

// FS holds the dashboard JSON files at its root.
//
//go:embed *.json
var FS embed.FS
