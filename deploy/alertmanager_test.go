package deploy

import (
	"os/exec"
	"strings"
	"testing"
)

// TestAlertmanagerConfig checks deploy/alertmanager/alertmanager.yml with Alertmanager's own amtool
// (make test installs it): it loads, and alerts route where the comments say.
func TestAlertmanagerConfig(t *testing.T) {
	amtool, err := exec.LookPath("amtool")
	if err != nil {
		t.Fatal("amtool not found: make test installs it (apt-get install prometheus-alertmanager)")
	}
	const cfg = "alertmanager/alertmanager.yml"
	if out, err := exec.Command(amtool, "check-config", cfg).CombinedOutput(); err != nil {
		t.Fatalf("amtool check-config: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		labels []string
		want   string
	}{
		{[]string{"alertname=ReplicationLagHigh", "severity=critical", "cluster=7"}, "oncall-pager,team-slack"},
		{[]string{"alertname=ReplicationLagHigh", "severity=warning", "cluster=7"}, "team-slack"},
		{[]string{"alertname=Watchdog", "severity=none"}, "deadmans-switch"},
		{[]string{"alertname=SomethingElse"}, "team-email"},
	} {
		args := append([]string{"config", "routes", "test", "--config.file=" + cfg}, tc.labels...)
		out, err := exec.Command(amtool, args...).Output()
		if got := strings.TrimSpace(string(out)); err != nil || got != tc.want {
			t.Errorf("%v routes to %q (%v), want %q", tc.labels, got, err, tc.want)
		}
	}
}
