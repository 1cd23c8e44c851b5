package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pganalytics/pganalytics/server/alerting"
)

// amAlert is one alert of Alertmanager's POST /api/v2/alerts.
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// notifier delivers the evaluating server's alerts to every configured Alertmanager (each one, not
// a load balancer in front of them: they deduplicate among themselves). A firing alert is sent
// when it starts firing and again every resend interval, with an endsAt four intervals ahead so
// that Alertmanager resolves it by itself should this server stop; a resolved one is sent once,
// with its endsAt. What could not be delivered to an Alertmanager is sent again at the next
// evaluation, after a backoff that doubles up to five minutes.
type notifier struct {
	urls         []string
	resend       time.Duration
	generatorURL string
	runbookBase  string
	client       *http.Client
	onResult     func(url string, alerts int, err error)

	mu    sync.Mutex
	sent  map[string]map[string]sentState // per Alertmanager, per alert id
	retry map[string]backoffState
}

type sentState struct {
	state string
	at    time.Time
}

type backoffState struct {
	next  time.Time
	delay time.Duration
}

func newNotifier(urls []string, resend time.Duration, generatorURL, runbookBase string, onResult func(string, int, error)) *notifier {
	return &notifier{
		urls: urls, resend: resend, generatorURL: generatorURL, runbookBase: runbookBase,
		client: &http.Client{Timeout: 10 * time.Second}, onResult: onResult,
		sent: make(map[string]map[string]sentState), retry: make(map[string]backoffState),
	}
}

// notify sends what is due to each Alertmanager.
func (n *notifier) notify(ctx context.Context, alerts []alerting.Alert, now time.Time) {
	var wg sync.WaitGroup
	for _, url := range n.urls {
		wg.Go(func() { n.notifyOne(ctx, url, alerts, now) })
	}
	wg.Wait()
}

func (n *notifier) notifyOne(ctx context.Context, url string, alerts []alerting.Alert, now time.Time) {
	n.mu.Lock()
	if b := n.retry[url]; now.Before(b.next) {
		n.mu.Unlock()
		return
	}
	sent := n.sent[url]
	if sent == nil {
		sent = make(map[string]sentState)
		n.sent[url] = sent
	}
	var (
		due   []amAlert
		ids   []string
		state []string
	)
	live := make(map[string]bool, len(alerts))
	for _, a := range alerts {
		id := a.ID()
		live[id] = true
		prev, ok := sent[id]
		switch a.State {
		case alerting.StateFiring:
			if ok && prev.state == alerting.StateFiring && now.Sub(prev.at) < n.resend {
				continue
			}
		case alerting.StateResolved:
			if !ok || prev.state == alerting.StateResolved {
				continue // never sent as firing, or already sent resolved
			}
		default:
			continue
		}
		due = append(due, n.wire(a, now))
		ids, state = append(ids, id), append(state, a.State)
	}
	for id := range sent {
		if !live[id] {
			delete(sent, id) // gone from the store: nothing more to say about it
		}
	}
	n.mu.Unlock()
	if len(due) == 0 {
		return
	}
	err := n.post(ctx, url, due)
	n.onResult(url, len(due), err)
	n.mu.Lock()
	defer n.mu.Unlock()
	if err != nil {
		b := n.retry[url]
		b.delay = min(max(2*b.delay, time.Second), 5*time.Minute)
		b.next = now.Add(b.delay)
		n.retry[url] = b
		return
	}
	delete(n.retry, url)
	for i, id := range ids {
		sent[id] = sentState{state: state[i], at: now}
	}
}

// failing reports whether the last delivery to any Alertmanager failed (it is being retried).
func (n *notifier) failing() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.retry) > 0
}

// wire is an alert as Alertmanager takes it: alertname and severity among its labels, the texts
// as annotations.
func (n *notifier) wire(a alerting.Alert, now time.Time) amAlert {
	labels := make(map[string]string, len(a.Labels)+2)
	for k, v := range a.Labels {
		if v != "" {
			labels[k] = v
		}
	}
	labels["alertname"], labels["severity"] = a.Rule, a.Severity
	ann := map[string]string{"summary": a.Summary}
	if a.Description != "" {
		ann["description"] = a.Description
	}
	if u := a.RunbookURL; u != "" {
		if n.runbookBase != "" && !strings.Contains(u, "://") {
			u = strings.TrimSuffix(n.runbookBase, "/") + "/" + strings.TrimPrefix(u, "/")
		}
		ann["runbook_url"] = u
	}
	w := amAlert{Labels: labels, Annotations: ann, StartsAt: a.FiredAt, GeneratorURL: n.generatorURL}
	if a.State == alerting.StateResolved {
		w.EndsAt = a.ResolvedAt
	} else {
		w.EndsAt = now.Add(4 * n.resend)
	}
	return w
}

func (n *notifier) post(ctx context.Context, url string, alerts []amAlert) error {
	body, err := json.Marshal(alerts)
	if err != nil {
		return fmt.Errorf("encode alerts: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(url, "/")+"/api/v2/alerts", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("alertmanager %s: %w", url, err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := n.client.Do(req)
	if err != nil {
		return fmt.Errorf("alertmanager %s: %w", url, err)
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return fmt.Errorf("alertmanager %s: %s: %s", url, res.Status, bytes.TrimSpace(msg))
	}
	_, _ = io.Copy(io.Discard, res.Body)
	return nil
}
