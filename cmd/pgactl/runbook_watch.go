package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pganalytics/pganalytics/internal/exitcode"
	"github.com/pganalytics/pganalytics/runbook"
)

func newRunbookWatchCmd() *cobra.Command {
	var (
		src                    runbookSource
		envName, baseline, rec string
		every, span            time.Duration
		resume                 bool
		watchID, output        string
	)
	cmd := &cobra.Command{
		Use:   "watch [PHASE]",
		Short: "Repeat a phase's automated steps on a schedule and record the baseline (Phase 4)",
		Long: `watch runs the automated steps of PHASE (default monitoring) every --every for --for, each
round a run of its own (runbook status --all lists them), manual steps skipped as the person's
checklist. After each round it records the plan's Phase 4B baseline: API CPU and memory, p50/p95/p99
latency, the validation SQL's time, collector success rate, 5xx rate and the store's size; it flags
API memory that grows round after round, database growth that is not linear, and figures far from
a --baseline file (a load test's, or an earlier watch's --record-baseline). The watch is kept in
STATE_DIR/watches/: if the process stops, --resume continues it until its end.

Exit codes: 0 every round succeeded and nothing was flagged, 1 otherwise, 2 usage.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "text", "json"); err != nil {
				return err
			}
			phase := "monitoring"
			if len(args) == 1 {
				phase = args[0]
			}
			runs, store, operator, err := src.runs(cmd, envName)
			if err != nil {
				return err
			}
			var resumed *runbook.WatchState
			if resume {
				if watchID != "" {
					resumed, err = store.LoadWatch(watchID)
				} else {
					resumed, err = store.LatestWatch()
				}
				if err != nil {
					return exitcode.With(exitcode.Usage, err)
				}
				envName = resumed.Env
			} else if watchID != "" {
				return exitcode.With(exitcode.Usage, errors.New("--watch goes with --resume"))
			}
			rb, err := src.runbook()
			if err != nil {
				return err
			}
			env, err := loadEnv(envName, store.Dir)
			if err != nil {
				return err
			}
			eng, err := runbook.NewEngine(rb, env, runbook.Options{StateDir: store.Dir, Runs: runs, Operator: operator,
				Smoke: envSmoke{env: env}})
			if err != nil {
				return exitcode.With(exitcode.Usage, err)
			}
			out := cmd.OutOrStdout()
			onRound := func(_ *runbook.WatchState, r runbook.WatchRound) {
				if output == "text" {
					printRound(out, r)
				}
			}
			var w *runbook.WatchState
			if resumed != nil {
				if output == "text" {
					fmt.Fprintf(out, "resuming watch %s of %s (%d rounds so far, until %s)\n", resumed.ID, resumed.Phase,
						len(resumed.Rounds), resumed.EndsAt.Local().Format(time.DateTime))
				}
				w, err = eng.ResumeWatch(cmd.Context(), resumed.ID, onRound)
			} else {
				if output == "text" {
					fmt.Fprintf(out, "watching %s every %s for %s (environment %s)\n", phase, every, span, env.Name)
				}
				w, err = eng.Watch(cmd.Context(), runbook.WatchOptions{Phase: phase, Every: every, For: span,
					Baseline: baseline, RecordBaseline: rec}, onRound)
			}
			if w == nil {
				return exitcode.With(exitcode.Usage, err)
			}
			if output == "json" {
				if jerr := writeJSON(out, w); jerr != nil {
					return jerr
				}
			} else {
				fmt.Fprintf(out, "\nwatch %s %s: %d rounds", w.ID, w.Status, len(w.Rounds))
				if rec != "" && w.Status != runbook.StatusInterrupted {
					fmt.Fprintf(out, "; baseline written to %s", rec)
				}
				fmt.Fprintln(out)
				if w.Status == runbook.StatusInterrupted {
					fmt.Fprintf(out, "continue with: pgactl runbook watch --resume --watch %s\n", w.ID)
				}
			}
			if err != nil {
				return exitcode.With(exitcode.Failure, err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	src.registerFile(f)
	src.registerRuns(f)
	f.StringVar(&envName, "env", "", "environment: a shipped name or a file (default $PGACTL_ENV, else demo)")
	f.DurationVar(&every, "every", 15*time.Minute, "time between the starts of two rounds")
	f.DurationVar(&span, "for", 6*time.Hour, "how long to keep watching")
	f.StringVar(&baseline, "baseline", "", "a baseline file (JSON) to compare every round with")
	f.StringVar(&rec, "record-baseline", "", "write the watch's baseline (each figure's median) to this file at the end")
	f.BoolVar(&resume, "resume", false, "continue the latest watch (or --watch ID) that did not end")
	f.StringVar(&watchID, "watch", "", "with --resume: the watch to continue")
	f.StringVarP(&output, "output", "o", "text", "output format: text (a line per round)|json (the watch at the end)")
	return cmd
}

func printRound(w io.Writer, r runbook.WatchRound) {
	s := r.Sample
	fmt.Fprintf(w, "round %d %s  run %s %s", r.N, r.At.Local().Format(time.TimeOnly), r.Run, r.Status)
	if len(r.Failed) > 0 {
		fmt.Fprintf(w, " (%s)", strings.Join(r.Failed, "; "))
	}
	fmt.Fprintln(w)
	if s.APIError == "" {
		fmt.Fprintf(w, "  API: CPU %.1f %%, RSS %.0f MiB, p50 %s p95 %s p99 %s over %.0f requests, %.2f %% 5xx\n",
			100*s.APICPU, s.APIRSSBytes/(1<<20), ms(s.P50Seconds), ms(s.P95Seconds), ms(s.P99Seconds), s.Requests, 100*s.ErrorRate)
	} else {
		fmt.Fprintf(w, "  API: %s\n", s.APIError)
	}
	if s.StoreError == "" {
		fmt.Fprintf(w, "  store: validation SQL %s, collectors %.1f %% successful, %.1f MiB\n",
			ms(s.QuerySeconds), 100*s.CollectorSuccess, s.DatabaseBytes/(1<<20))
	} else {
		fmt.Fprintf(w, "  store: %s\n", s.StoreError)
	}
	for _, f := range r.Findings {
		fmt.Fprintf(w, "  FLAG: %s\n", f)
	}
}

func ms(sec float64) string {
	return time.Duration(sec * float64(time.Second)).Round(10 * time.Microsecond).String()
}
