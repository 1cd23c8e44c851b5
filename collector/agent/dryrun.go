package agent

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/pganalytics/pganalytics/collector/pgmetrics"
	"github.com/pganalytics/pganalytics/internal/api"
)

// DryRunResult summarises a dry run for the exit code.
type DryRunResult struct {
	Unreachable        int // instances that did not answer
	MissingPrivileges  int
	FailedFamilies     int
	InstancesCollected int
}

// DryRun connects to every instance, checks its privileges, runs every query once and prints what
// would be pushed. Nothing is sent anywhere.
func (a *Agent) DryRun(ctx context.Context, out io.Writer) DryRunResult {
	var res DryRunResult
	privileges := make([][]pgmetrics.Privilege, len(a.targets))
	privErrs := make([]error, len(a.targets))
	for i, t := range a.targets {
		privileges[i], privErrs[i] = t.CheckPrivileges(ctx)
	}
	a.every = 1 // every family, whatever the intervals
	states, at := a.Cycle(ctx)
	for i, st := range states {
		fmt.Fprintf(out, "== %s (%s) ", st.Name, st.Address)
		if !st.Up {
			res.Unreachable++
			fmt.Fprintf(out, "UNREACHABLE: %v\n\n", st.Err)
			continue
		}
		res.InstancesCollected++
		fmt.Fprintf(out, "up: PostgreSQL %d.%d %s, timeline %d, system identifier %s, collected in %s\n",
			st.Info.Major(), st.Info.VersionNum%10000, st.Info.Role(), st.Info.Timeline, st.Info.SystemIdentifier, st.Duration.Round(10_000))
		fmt.Fprintln(out, "privileges:")
		if privErrs[i] != nil {
			fmt.Fprintf(out, "  ERROR    %v\n", privErrs[i])
		}
		for _, p := range privileges[i] {
			if p.OK {
				fmt.Fprintf(out, "  ok       %s\n", p.What)
				continue
			}
			res.MissingPrivileges++
			fmt.Fprintf(out, "  MISSING  %s\n           fix: %s\n", p.What, p.Fix)
		}
		if len(st.Failures) > 0 {
			fmt.Fprintln(out, "failed queries:")
			for _, f := range st.Failures {
				res.FailedFamilies++
				fmt.Fprintf(out, "  %s\n", f)
			}
		}
		printSamples(out, st.Samples())
		fmt.Fprintln(out)
	}
	fmt.Fprintf(out, "%d of %d instances answered, %d missing privileges, %d failed queries; nothing was pushed (collected at %s)\n",
		res.InstancesCollected, len(states), res.MissingPrivileges, res.FailedFamilies, at.Format("2006-01-02T15:04:05Z"))
	return res
}

func printSamples(out io.Writer, samples []api.Sample) {
	slices.SortStableFunc(samples, func(a, b api.Sample) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(labelString(a.Labels), labelString(b.Labels)))
	})
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "METRIC\tLABELS\tVALUE")
	for _, s := range samples {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, labelString(s.Labels), strconv.FormatFloat(s.Value, 'f', -1, 64))
	}
	tw.Flush()
}

// labelString prints labels sorted, without the instance label every sample of the block shares.
func labelString(l map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		if k == "instance" || l[k] == "" {
			continue
		}
		parts = append(parts, k+"="+strconv.Quote(l[k]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ",")
}
