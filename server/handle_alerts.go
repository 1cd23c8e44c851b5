package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/server/auth"
)

// deliveryTestAlert is the alertname of the synthetic alert of a delivery self-test.
const deliveryTestAlert = "PgAnalyticsDeliveryTest"

var testIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

func (s *Server) alertmanagers(w http.ResponseWriter) bool {
	if s.notifier == nil {
		writeErr(w, newError(http.StatusConflict, codeConflict, "no Alertmanager is configured ([alerting] alertmanager_urls)"))
		return false
	}
	return true
}

// handleAlertTest is POST /api/v1/alerts/test (operator+): sends a uniquely labelled synthetic
// alert through this server's delivery path to every Alertmanager; GET /alerts/test/{id} then
// tells which of them hold it, DELETE resolves it.
func (s *Server) handleAlertTest(w http.ResponseWriter, r *http.Request, p *principal) {
	if _, e := query(r); e != nil {
		writeErr(w, e)
		return
	}
	if !s.alertmanagers(w) {
		return
	}
	id, err := auth.NewID()
	if err != nil {
		writeErr(w, newError(http.StatusInternalServerError, codeInternal, "internal server error"))
		return
	}
	id = strings.ReplaceAll(id, "-", "")[:32]
	if !s.auditFirst(w, r, p.actor(), "alert_test", "test:"+id, nil) {
		return
	}
	now := time.Now().UTC()
	res := api.AlertTest{ID: id, Alertmanagers: s.notifier.deliver(r.Context(), s.testAlert(id, now, now.Add(10*time.Minute)))}
	writeJSON(w, http.StatusAccepted, res)
}

func (s *Server) testAlert(id string, start, end time.Time) amAlert {
	return amAlert{
		Labels: map[string]string{"alertname": deliveryTestAlert, "severity": "info", "test_id": id, "server": s.name},
		Annotations: map[string]string{"summary": "pgAnalytics alert delivery self-test " + id +
			" (pgactl alerts test); it resolves by itself"},
		StartsAt: start, EndsAt: end, GeneratorURL: s.notifier.generatorURL,
	}
}

// handleAlertTestStatus is GET /api/v1/alerts/test/{id}: whether each Alertmanager holds the
// test alert.
func (s *Server) handleAlertTestStatus(w http.ResponseWriter, r *http.Request, _ *principal) {
	id, ok := s.alertTestID(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, api.AlertTest{ID: id, Alertmanagers: s.notifier.holds(r.Context(), id)})
}

// handleAlertTestResolve is DELETE /api/v1/alerts/test/{id}: resolves the test alert everywhere.
func (s *Server) handleAlertTestResolve(w http.ResponseWriter, r *http.Request, _ *principal) {
	id, ok := s.alertTestID(w, r)
	if !ok {
		return
	}
	now := time.Now().UTC()
	writeJSON(w, http.StatusOK, api.AlertTest{ID: id, Alertmanagers: s.notifier.deliver(r.Context(), s.testAlert(id, now.Add(-time.Minute), now))})
}

// alertTestID is the test id of the path, once the request may ask about it.
func (s *Server) alertTestID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if !testIDPattern.MatchString(id) {
		writeErr(w, newError(http.StatusNotFound, codeNotFound, "not found"))
		return "", false
	}
	return id, s.alertmanagers(w)
}

// handleCreateSilence is POST /api/v1/alerts/silences (operator+, audited): an Alertmanager
// silence for the given label matchers, on every Alertmanager.
func (s *Server) handleCreateSilence(w http.ResponseWriter, r *http.Request, p *principal) {
	var req api.SilenceRequest
	if e := decodeBody(w, r, s.cfg.Limits.BodyMaxBytes, &req); e != nil {
		writeErr(w, e)
		return
	}
	d, err := time.ParseDuration(req.Duration)
	switch {
	case err != nil || d < time.Minute || d > 7*24*time.Hour:
		writeErr(w, newError(http.StatusBadRequest, codeValidation, "duration: want a Go duration from 1m to 168h, e.g. \"2h\""))
		return
	case len(req.Matchers) == 0 || len(req.Matchers) > 16:
		writeErr(w, newError(http.StatusBadRequest, codeValidation, "matchers: want 1-16 label=value pairs (alertname at least)"))
		return
	case strings.TrimSpace(req.Comment) == "" || len(req.Comment) > 1024:
		writeErr(w, newError(http.StatusBadRequest, codeValidation, "comment: say why, in at most 1024 bytes"))
		return
	}
	for k, v := range req.Matchers {
		if !validLabelName(k) || len(k) > maxLabelNameBytes || v == "" || len(v) > maxLabelValueBytes {
			writeErr(w, newError(http.StatusBadRequest, codeValidation, "matchers: %q: want a label name and a non-empty value", truncate(k, 64)))
			return
		}
	}
	if !s.alertmanagers(w) {
		return
	}
	detail := map[string]any{"matchers": req.Matchers, "duration": d.String(), "comment": req.Comment}
	if !s.auditFirst(w, r, p.actor(), "silence_created", "alert:"+req.Matchers["alertname"], detail) {
		return
	}
	now := time.Now().UTC()
	res := api.SilenceResponse{StartsAt: now, EndsAt: now.Add(d), Alertmanagers: s.notifier.silence(r.Context(), req.Matchers, now, now.Add(d), p.name, req.Comment)}
	writeJSON(w, http.StatusCreated, res)
}

// deliver posts one alert to every Alertmanager and reports each answer.
func (n *notifier) deliver(ctx context.Context, a amAlert) []api.AlertmanagerResult {
	return n.each(func(url string) (string, error) { return "", n.post(ctx, url, []amAlert{a}) })
}

// holds asks every Alertmanager whether it holds the test alert id.
func (n *notifier) holds(ctx context.Context, id string) []api.AlertmanagerResult {
	return n.each(func(base string) (string, error) {
		q := url.Values{"filter": {fmt.Sprintf("test_id=%q", id)}, "silenced": {"true"}, "inhibited": {"true"}}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/api/v2/alerts?"+q.Encode(), nil)
		if err != nil {
			return "", err
		}
		res, err := n.client.Do(req)
		if err != nil {
			return "", fmt.Errorf("alertmanager %s: %w", base, err)
		}
		defer res.Body.Close()
		var alerts []json.RawMessage
		if res.StatusCode != http.StatusOK {
			return "", fmt.Errorf("alertmanager %s: %s", base, res.Status)
		}
		if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&alerts); err != nil {
			return "", fmt.Errorf("alertmanager %s: %w", base, err)
		}
		if len(alerts) == 0 {
			return "", errNotReceived
		}
		return "", nil
	})
}

var errNotReceived = errors.New("not received (yet)")

// silence creates the silence on every Alertmanager and reports each one's silence id.
func (n *notifier) silence(ctx context.Context, matchers map[string]string, start, end time.Time, by, comment string) []api.AlertmanagerResult {
	type matcher struct {
		Name    string `json:"name"`
		Value   string `json:"value"`
		IsRegex bool   `json:"isRegex"`
		IsEqual bool   `json:"isEqual"`
	}
	body := struct {
		Matchers  []matcher `json:"matchers"`
		StartsAt  time.Time `json:"startsAt"`
		EndsAt    time.Time `json:"endsAt"`
		CreatedBy string    `json:"createdBy"`
		Comment   string    `json:"comment"`
	}{StartsAt: start, EndsAt: end, CreatedBy: "pganalytics:" + by, Comment: comment}
	for k, v := range matchers {
		body.Matchers = append(body.Matchers, matcher{Name: k, Value: v, IsEqual: true})
	}
	raw, _ := json.Marshal(body)
	return n.each(func(base string) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+"/api/v2/silences", strings.NewReader(string(raw)))
		if err != nil {
			return "", err
		}
		req.Header.Set("Content-Type", "application/json")
		res, err := n.client.Do(req)
		if err != nil {
			return "", fmt.Errorf("alertmanager %s: %w", base, err)
		}
		defer res.Body.Close()
		var out struct {
			SilenceID string `json:"silenceID"`
		}
		if res.StatusCode != http.StatusOK {
			msg, _ := io.ReadAll(io.LimitReader(res.Body, 512))
			return "", fmt.Errorf("alertmanager %s: %s: %s", base, res.Status, strings.TrimSpace(string(msg)))
		}
		if err := json.NewDecoder(io.LimitReader(res.Body, 1<<16)).Decode(&out); err != nil {
			return "", fmt.Errorf("alertmanager %s: %w", base, err)
		}
		return out.SilenceID, nil
	})
}

// each runs fn for every Alertmanager at once and collects the results in configuration order.
func (n *notifier) each(fn func(url string) (string, error)) []api.AlertmanagerResult {
	out := make([]api.AlertmanagerResult, len(n.urls))
	var wg sync.WaitGroup
	for i, u := range n.urls {
		wg.Go(func() {
			id, err := fn(u)
			out[i] = api.AlertmanagerResult{URL: u, OK: err == nil, ID: id}
			if err != nil {
				out[i].Error = err.Error()
			}
		})
	}
	wg.Wait()
	return out
}
