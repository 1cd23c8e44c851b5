package topology

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/pganalytics/pganalytics/internal/api"
)

// FuzzMergeDiff: the server merges, links and diffs whatever collectors push (within the API's
// bounds): no snapshot, however odd (duplicate names, upstream cycles, garbage LSNs, a member
// that is its own sender), may make it panic or invent a member.
func FuzzMergeDiff(f *testing.F) {
	seed := []api.CollectorTopology{
		collector("1", t0, false, cluster([]api.Instance{primary("a", 1, "0/3"), standby("b", "a", 1, "0/2"), standby("c", "b", 1, "zz")},
			[]api.Standby{row("a", "b", "async"), row("b", "c", "sync"), row("c", "b", "")}, api.Slot{Instance: "a", Name: "b"})),
		collector("2", t0, true, cluster([]api.Instance{standby("a", "a", 2, "1/0"), standby("a", "b", 2, "")}, nil)),
	}
	raw, _ := json.Marshal(seed)
	f.Add(raw, 1)
	f.Add([]byte(`[{"snapshot":{"clusters":[{"system_identifier":"1","instances":[{"name":"x","up":true,"role":"standby","upstream":"x","wal_receiver":{"connected":true,"sender_port":1}}]}]}}]`), 0)
	f.Fuzz(func(t *testing.T, data []byte, split int) {
		var tops []api.CollectorTopology
		if json.Unmarshal(data, &tops) != nil || len(tops) > 16 {
			return
		}
		members := 0
		for _, tp := range tops {
			for _, c := range tp.Snapshot.Clusters {
				if c.SystemIdentifier != "" {
					members += len(c.Instances)
				}
			}
		}
		split = min(max(split, 0), len(tops))
		prev, next := Merge(tops[:split], nil), Merge(tops, map[string]string{"1": "named"})
		got := 0
		for i := range next {
			got += len(next[i].Instances)
			Depths(&next[i].Cluster)
			Signature(&next[i])
			for j := range prev {
				if prev[j].SystemIdentifier == next[i].SystemIdentifier {
					Diff(&prev[j], &next[i], time.Unix(0, 0))
				}
			}
		}
		if got > members {
			t.Fatalf("merged %d members out of %d reported", got, members)
		}
	})
}
