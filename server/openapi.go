package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// routeOpenAPI serves the API's OpenAPI 3 document.
const routeOpenAPI = "GET /api/v1/openapi.json"

// operation is one route of the OpenAPI document. The document is built from this table, and a
// test keeps the table equal to the routes the server registers.
type operation struct {
	pattern  string   // "METHOD /path/{param}", as registered
	summary  string   // one line; docs/api.md has the rest
	access   string   // anyone, viewer, operator, admin, collector, registration secret
	query    []string // accepted query parameters
	body     string   // request body schema name, "" for none
	response string   // success response schema name; "" for no JSON body
	success  int      // success status
}

// operations are the API's routes (docs/api.md, endpoints).
var operations = []operation{
	{routeHealth, "Deep health check: the store, the cache, Alertmanager delivery", "anyone", nil, "", "Health", 200},
	{routeLive, "Liveness probe (never rate limited)", "anyone", nil, "", "Probe", 200},
	{routeReady, "Readiness probe (never rate limited): 503 while draining or without the store", "anyone", nil, "", "Probe", 200},
	{routeOpenAPI, "This document", "anyone", nil, "", "Object", 200},
	{"POST /api/v1/auth/login", "Log in: an access and refresh token pair", "anyone", nil, "LoginRequest", "TokenPair", 200},
	{"POST /api/v1/auth/refresh", "Rotate the token pair", "anyone", nil, "RefreshRequest", "TokenPair", 200},
	{"POST /api/v1/auth/logout", "Revoke the refresh token", "viewer", nil, "RefreshRequest", "", 204},
	{"POST /api/v1/collectors/register", "Register a collector (X-Registration-Secret)", "registration secret", nil, "RegisterRequest", "Object", 201},
	{"POST /api/v1/metrics/push", "Push one collection cycle (gzip JSON accepted)", "collector", nil, "PushRequest", "Object", 202},
	{"GET /api/v1/metrics", "Query stored samples", "viewer", []string{"collector_id", "name", "since", "until", "limit", "step"}, "", "Object", 200},
	{"GET /api/v1/collectors", "List collectors", "viewer", nil, "", "Object", 200},
	{"GET /api/v1/collectors/{id}", "One collector", "viewer", nil, "", "Object", 200},
	{"DELETE /api/v1/collectors/{id}", "Deregister a collector (revokes its token)", "operator", nil, "", "", 204},
	{"GET /api/v1/config/{collector_id}", "A collector's stored configuration (the collector itself, or an admin)", "collector or admin", nil, "", "Object", 200},
	{"PUT /api/v1/config/{collector_id}", "Store a collector's configuration", "admin", nil, "Object", "Object", 200},
	{"GET /api/v1/replication", "Live replication topology, or as it was at a time", "viewer", []string{"collector_id", "at"}, "", "Object", 200},
	{routeStream, "Replication topology and events as Server-Sent Events", "viewer", []string{"collector_id"}, "", "", 200},
	{"GET /api/v1/clusters", "Clusters and their members", "viewer", nil, "", "Object", 200},
	{"GET /api/v1/clusters/{name}/history", "A cluster's primary over time", "viewer", []string{"since", "until"}, "", "Object", 200},
	{"GET /api/v1/events", "Replication events, paged", "viewer", []string{"cluster", "instance", "kind", "since", "until", "limit", "cursor"}, "", "Object", 200},
	{"GET /api/v1/users", "List users", "admin", nil, "", "Object", 200},
	{"POST /api/v1/users", "Create a user", "admin", nil, "Object", "Object", 201},
	{"DELETE /api/v1/users/{id}", "Delete a user", "admin", nil, "", "", 204},
	{"PUT /api/v1/users/{id}/team-roles", "Set a user's team roles (deployment-lead, database-lead, …)", "admin", nil, "Object", "Object", 200},
	{"GET /api/v1/runbook/runs", "Shared runbook runs, newest first", "viewer", []string{"limit"}, "", "Object", 200},
	{"POST /api/v1/runbook/runs", "Start a shared run; the caller gets its lease", "operator", nil, "Object", "Object", 201},
	{"GET /api/v1/runbook/runs/{id}", "One run: steps, lease, approvals", "viewer", nil, "", "Object", 200},
	{"PUT /api/v1/runbook/runs/{id}", "Save a run's state (lease holder, X-Runbook-Lease)", "operator", nil, "Object", "", 204},
	{"GET /api/v1/runbook/runs/{id}/stream", "A run as Server-Sent Events, on every change", "viewer", nil, "", "", 200},
	{"POST /api/v1/runbook/runs/{id}/lease", "Take (resume) or renew a run's lease", "operator", nil, "Object", "Object", 200},
	{"DELETE /api/v1/runbook/runs/{id}/lease", "Release a run's lease (lease holder)", "operator", nil, "", "", 204},
	{"GET /api/v1/runbook/runs/{id}/records", "A run's audit records", "viewer", nil, "", "Object", 200},
	{"POST /api/v1/runbook/runs/{id}/records", "Append an audit record (lease holder)", "operator", nil, "Object", "", 201},
	{"POST /api/v1/runbook/runs/{id}/approvals", "Approve or reject a step waiting for approval", "operator", nil, "Object", "Object", 201},
	{"GET /api/v1/runbook/approvals", "Every step waiting for approval", "viewer", nil, "", "Object", 200},
	{"GET /api/v1/audit", "The audit log, newest first", "admin", []string{"limit", "before_id", "action"}, "", "Object", 200},
	{"GET /api/v1/alerts", "Alerts of the rules: firing, pending, resolved", "viewer", nil, "", "Object", 200},
	{"POST /api/v1/alerts/test", "Send a synthetic alert to every Alertmanager", "operator", nil, "", "Object", 202},
	{"GET /api/v1/alerts/test/{id}", "Where the synthetic alert arrived", "operator", nil, "", "Object", 200},
	{"DELETE /api/v1/alerts/test/{id}", "Resolve the synthetic alert", "operator", nil, "", "Object", 200},
	{"POST /api/v1/alerts/silences", "Silence alerts in every Alertmanager", "operator", nil, "Object", "Object", 201},
	{routePrometheus, "Prometheus exposition (behind metrics.bearer_token when set; absent with metrics.listen_addr)", "anyone or scrape token", nil, "", "", 200},
}

// openAPIDocument is the OpenAPI 3.0 document of operations.
func openAPIDocument(version string) ([]byte, error) {
	paths := map[string]map[string]any{}
	for _, op := range operations {
		method, path, _ := strings.Cut(op.pattern, " ")
		item := paths[path]
		if item == nil {
			item = map[string]any{}
			paths[path] = item
		}
		var params []any
		for _, seg := range strings.Split(path, "/") {
			if strings.HasPrefix(seg, "{") {
				params = append(params, map[string]any{"name": strings.Trim(seg, "{}"), "in": "path", "required": true,
					"schema": map[string]any{"type": "string"}})
			}
		}
		for _, q := range op.query {
			params = append(params, map[string]any{"name": q, "in": "query", "schema": map[string]any{"type": "string"}})
		}
		responses := map[string]any{
			"4XX": map[string]any{"description": "refused: the error envelope", "content": jsonContent("Error")},
		}
		ok := map[string]any{"description": "success"}
		if op.response != "" {
			ok["content"] = jsonContent(op.response)
		}
		responses[strconv.Itoa(op.success)] = ok
		o := map[string]any{
			"summary":      op.summary,
			"description":  "Access: " + op.access + ".",
			"operationId":  strings.ToLower(method) + strings.NewReplacer("/api/v1", "", "/", "_", "{", "", "}", "", ".", "_").Replace(path),
			"responses":    responses,
			"x-pga-access": op.access,
		}
		if len(params) > 0 {
			o["parameters"] = params
		}
		if op.body != "" {
			o["requestBody"] = map[string]any{"required": true, "content": jsonContent(op.body)}
		}
		if op.access != "anyone" {
			o["security"] = []any{map[string]any{"bearer": []any{}}}
		}
		item[strings.ToLower(method)] = o
	}
	str := map[string]any{"type": "string"}
	doc := map[string]any{
		"openapi": "3.0.3",
		"info":    map[string]any{"title": "pgAnalytics API", "version": version},
		"paths":   paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
			"schemas": map[string]any{
				"Object": map[string]any{"type": "object"},
				"Error": map[string]any{"type": "object", "required": []string{"error"}, "properties": map[string]any{
					"error": map[string]any{"type": "object", "required": []string{"code", "message"},
						"properties": map[string]any{"code": str, "message": str, "request_id": str}}}},
				"Health":    map[string]any{"type": "object", "required": []string{"status", "uptime", "version", "checks"}},
				"Probe":     map[string]any{"type": "object", "required": []string{"status"}},
				"TokenPair": map[string]any{"type": "object", "required": []string{"access_token", "refresh_token", "token_type", "expires_in", "role"}},
				"LoginRequest": map[string]any{"type": "object", "required": []string{"username", "password"},
					"properties": map[string]any{"username": str, "password": str}},
				"RefreshRequest":  map[string]any{"type": "object", "required": []string{"refresh_token"}, "properties": map[string]any{"refresh_token": str}},
				"RegisterRequest": map[string]any{"type": "object", "required": []string{"name", "hostname"}, "properties": map[string]any{"name": str, "hostname": str}},
				"PushRequest":     map[string]any{"type": "object", "required": []string{"collected_at"}},
			},
		},
	}
	return json.MarshalIndent(doc, "", "  ")
}

func jsonContent(schema string) map[string]any {
	return map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/" + schema}}}
}

// handleOpenAPI is GET /api/v1/openapi.json.
func (s *Server) handleOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(s.openapi)
}
