// Package deploy holds what is installed next to the binaries (systemd units, example
// configurations, Prometheus and Grafana files); the alert rules are embedded as the API's default.
package deploy

import _ "embed"

// AlertRules is deploy/alerts.toml, the shipped alert rules.
//
//go:embed alerts.toml
var AlertRules []byte

// HAProxyConfig is deploy/haproxy/haproxy.cfg: haproxy in front of the API servers, configured
// from the environment (`pgactl demo --ha` runs it as shipped).
//
//go:embed haproxy/haproxy.cfg
var HAProxyConfig []byte

// GrafanaReaderSQL is deploy/grafana/grafana_reader.sql: the dashboards' read-only role (the demo
// creates it, as an operator would after migrating).
//
//go:embed grafana/grafana_reader.sql
var GrafanaReaderSQL []byte
