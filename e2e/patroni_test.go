package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	pgaclient "github.com/pganalytics/pganalytics/client"
	"github.com/pganalytics/pganalytics/internal/api"
	"github.com/pganalytics/pganalytics/internal/pgcluster"
	"github.com/pganalytics/pganalytics/internal/pgtest"
	"github.com/pganalytics/pganalytics/internal/topology"
)

// TestPatroniSwitchover runs a three-member Patroni cluster on a real etcd, watched by a collector
// that names each member's Patroni REST API, and switches the leader over through Patroni's REST
// API: the API shows Patroni's view beside PostgreSQL's, gives the leader-change and promotion
// events, and the new topology.
func TestPatroniSwitchover(t *testing.T) {
	if testing.Short() {
		t.Skip("patroni test: long")
	}
	const interval = 2 * time.Second
	s := startStack(t, interval, false)
	ctx := t.Context()

	scratch, err := pgcluster.NewScratch()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = scratch.Close() })
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	pc, err := pgcluster.StartPatroni(startCtx, pgcluster.PatroniConfig{BaseDir: scratch.Dir, Binaries: pgtest.Binaries(t), Scope: "pat"})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pc.Stop)

	// A second collector, one [[postgres]] per member, each with its Patroni URL.
	dir := t.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, "[collector]\nname = \"patroni-collector\"\ninterval = %q\n\n[api]\nurl = %q\ntoken_file = %q\nca_file = %q\n\n",
		interval.String(), s.env.Vars["PGACTL_API_URL"], filepath.Join(dir, "token"), s.env.Vars["PGACTL_CA_FILE"])
	for _, m := range pc.Members {
		fmt.Fprintf(&b, "[[postgres]]\nname = %q\ncluster = \"pat\"\ndsn = %q\npatroni_url = %q\n\n", m.Name, m.DSN(), m.APIURL)
	}
	fmt.Fprintf(&b, "[pg_replication]\nenabled = true\n\n[buffer]\nspool_dir = %q\n", filepath.Join(dir, "spool"))
	config := filepath.Join(dir, "collector.toml")
	if err := os.WriteFile(config, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "REGISTRATION_SECRET="+s.env.Vars["REGISTRATION_SECRET"])
	reg := exec.Command(bin("pganalytics"), "register", "--config", config)
	reg.Env = env
	if out, err := reg.CombinedOutput(); err != nil {
		t.Fatalf("register: %v: %s", err, out)
	}
	logFile := filepath.Join(dir, "collector.log")
	logf, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	collector := exec.Command(bin("pganalytics"), "--config", config)
	collector.Env, collector.Stdout, collector.Stderr = env, logf, logf
	if err := collector.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = collector.Process.Kill()
		_ = collector.Wait()
		logf.Close()
		if t.Failed() {
			data, _ := os.ReadFile(logFile)
			t.Logf("patroni collector log:\n%s", data)
		}
	})

	client := s.apiClient(t)
	pat := func(ctx context.Context) (api.ClusterView, bool) {
		cs, err := client.Clusters(ctx)
		if err != nil {
			return api.ClusterView{}, false
		}
		for _, c := range cs.Clusters {
			if c.Name == "pat" {
				return c, true
			}
		}
		return api.ClusterView{}, false
	}
	// agreed waits until PostgreSQL's primary is Patroni's leader, every member is placed, and the
	// two views agree.
	agreed := func(what string, leader string) api.ClusterView {
		t.Helper()
		var got api.ClusterView
		waitFor(t, 60*time.Second, what, func(ctx context.Context) (bool, string) {
			c, ok := pat(ctx)
			got = c
			if !ok || c.Patroni == nil {
				return false, "no patroni view yet"
			}
			standbys := 0
			for _, in := range c.Instances {
				if in.Role == "standby" && in.Upstream == leader {
					standbys++
				}
			}
			state := fmt.Sprintf("primaries %v, leader %q, %d standbys under %s, disagreements %v",
				topology.Primaries(&c.Cluster), c.Patroni.Leader, standbys, leader, c.Patroni.Disagreements)
			return slices.Equal(topology.Primaries(&c.Cluster), []string{leader}) && c.Patroni.Leader == leader &&
				standbys == 2 && len(c.Patroni.Disagreements) == 0, state
		})
		return got
	}
	leader, err := pc.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := agreed("patroni and postgresql agree on the first leader", leader.Name)
	if before.Patroni.Scope != "pat" || len(before.Patroni.Members) != 3 {
		t.Fatalf("patroni view: %+v", before.Patroni)
	}
	for _, in := range before.Instances {
		if in.Patroni == nil || in.Patroni.Name != in.Name || in.Patroni.Error != "" {
			t.Fatalf("%s: its own Patroni view %+v", in.Name, in.Patroni)
		}
	}

	var candidate string
	for _, m := range pc.Members {
		if m.Name != leader.Name {
			candidate = m.Name
			break
		}
	}
	switched := time.Now()
	if err := pc.Switchover(ctx, candidate); err != nil {
		t.Fatal(err)
	}
	returned := time.Now()
	after := agreed("the candidate leads in both views", candidate)
	t.Logf("switchover %s → %s: Patroni answered the POST after %.1f s; the API showed both views agreeing %.1f s later",
		leader.Name, candidate, returned.Sub(switched).Seconds(), time.Since(returned).Seconds())
	if after.Timeline <= before.Timeline {
		t.Errorf("timeline %d after the switchover, %d before", after.Timeline, before.Timeline)
	}
	if h := after.Patroni.History; len(h) == 0 || h[len(h)-1].NewLeader != candidate {
		t.Errorf("patroni history %+v: the last entry should name %s", h, candidate)
	}

	// Both the PostgreSQL and the Patroni event, for this cluster.
	waitFor(t, 30*time.Second, "promotion and patroni_leader_changed events", func(ctx context.Context) (bool, string) {
		er, err := client.Events(ctx, pgaclient.EventsQuery{Cluster: "pat"})
		if err != nil {
			return false, err.Error()
		}
		var kinds, seen []string
		var leaderChange *api.Event
		for i, e := range er.Events {
			kinds = append(kinds, e.Kind)
			seen = append(seen, fmt.Sprintf("%s(%s %v)", e.Kind, e.Instance, e.Details))
			if e.Kind == api.EventPatroniLeaderChanged {
				leaderChange = &er.Events[i]
			}
		}
		ok := slices.Contains(kinds, api.EventPromotion) && leaderChange != nil &&
			leaderChange.Details["old_leader"] == leader.Name && leaderChange.Details["new_leader"] == candidate &&
			leaderChange.Instance == candidate
		return ok, fmt.Sprint(seen)
	})

	// The CLI puts Patroni's view beside PostgreSQL's.
	cliEnv := s.cliEnv(t)
	out, errOut, code := runPgactl(t, 30*time.Second, cliEnv, "replication")
	if code != 0 || !strings.Contains(out, "PATRONI") || !strings.Contains(out, "patroni pat  leader "+candidate) ||
		!strings.Contains(out, "leader running tl "+fmt.Sprint(after.Timeline)) {
		t.Errorf("pgactl replication: %d\n%s%s", code, out, errOut)
	}
}
