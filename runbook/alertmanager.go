package runbook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pganalytics/pganalytics/client"
)

// checkAlertmanager: every Alertmanager of url (comma or space separated base URLs, the API's
// [alerting] alertmanager_urls) answers ready, and its status names its version and cluster state.
// It needs no API: the pre-deployment check that alerts will have somewhere to go.
func (e *Engine) checkAlertmanager(ctx context.Context, s *Step, out *lineWriter) error {
	list, err := e.env.expandStep(s.URL)
	if err != nil {
		return fmt.Errorf("url: %w", err)
	}
	urls := splitList(list)
	if len(urls) == 0 {
		return fmt.Errorf("no Alertmanager URL: set the environment's ALERTMANAGER_URLS (the API's [alerting] alertmanager_urls)")
	}
	var down []string
	for _, u := range urls {
		u = strings.TrimRight(u, "/")
		if e.env.LoopbackOnly {
			if err := checkLoopbackURL(u); err != nil {
				return fmt.Errorf("environment %s is loopback-only: %w", e.env.Name, err)
			}
		}
		c, err := client.New(client.Options{BaseURL: u, CAFile: e.env.CAFile, Timeout: 5 * time.Second, UserAgent: "pgactl-runbook"})
		if err != nil {
			return err
		}
		ready, err := c.Do(ctx, client.RawRequest{Path: "/-/ready"})
		if err != nil || ready.Status != http.StatusOK {
			down = append(down, u)
			out.println(fmt.Sprintf("%s: not ready (%d %v)", u, ready.Status, err))
			continue
		}
		st, err := c.Do(ctx, client.RawRequest{Path: "/api/v2/status"})
		var status struct {
			VersionInfo struct {
				Version string `json:"version"`
			} `json:"versionInfo"`
			Cluster struct {
				Status string `json:"status"`
			} `json:"cluster"`
		}
		if err != nil || st.Status != http.StatusOK || json.Unmarshal(st.Body, &status) != nil {
			down = append(down, u)
			out.println(fmt.Sprintf("%s: ready, but GET /api/v2/status answered %d %v", u, st.Status, err))
			continue
		}
		out.println(fmt.Sprintf("%s: ready, Alertmanager %s, cluster %s", u, orDash(status.VersionInfo.Version), orDash(status.Cluster.Status)))
	}
	if len(down) > 0 {
		return classifyHTTP(fmt.Errorf("%d of %d Alertmanagers not answering: %s", len(down), len(urls), strings.Join(down, ", ")))
	}
	return nil
}
