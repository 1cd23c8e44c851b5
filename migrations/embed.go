// Package migrations holds the metrics store's schema as goose SQL migrations, embedded so that
// `pganalytics-api migrate` needs nothing but its own binary.
package migrations

import "embed"

// FS holds the numbered goose migrations (NNNNN_name.sql) at its root.
//
//go:embed *.sql
var FS embed.FS
