package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/pganalytics/pganalytics/runbook"
)

// stdinConfirmer asks on the terminal (or reads answers piped to stdin); with --yes it answers itself.
type stdinConfirmer struct {
	in          io.Reader
	out         io.Writer
	yes         bool
	destructive bool
	lines       chan string
}

func (c *stdinConfirmer) Confirm(ctx context.Context, p runbook.Prompt) (runbook.Reply, error) {
	s := p.Step
	if c.yes {
		switch p.Kind {
		case runbook.PromptManual:
			fmt.Fprintf(c.out, "    manual step confirmed by --yes\n")
			return runbook.Reply{Decision: runbook.Proceed}, nil
		case runbook.PromptDestructive:
			if c.destructive {
				fmt.Fprintf(c.out, "    destructive step confirmed by --confirm-destructive\n")
				return runbook.Reply{Decision: runbook.Proceed, Typed: s.ID}, nil
			}
			return runbook.Reply{Decision: runbook.Proceed}, nil
		}
		return runbook.Reply{Decision: runbook.Abort}, nil
	}
	switch p.Kind {
	case runbook.PromptManual:
		if strings.TrimSpace(s.Description) != "" {
			for _, l := range strings.Split(strings.TrimSpace(s.Description), "\n") {
				fmt.Fprintf(c.out, "    %s\n", l)
			}
		}
		for _, item := range s.Checklist {
			fmt.Fprintf(c.out, "    [ ] %s\n", item)
		}
		return c.choose(ctx, "    Done? [y]es, [s]kip, [a]bort: ", map[string]runbook.Decision{
			"y": runbook.Proceed, "yes": runbook.Proceed, "s": runbook.Skip, "skip": runbook.Skip, "a": runbook.Abort, "abort": runbook.Abort})
	case runbook.PromptDestructive:
		fmt.Fprintf(c.out, "\n%s/%s  %s is DESTRUCTIVE.\n", p.Phase, s.ID, s.Title)
		for range 3 {
			fmt.Fprintf(c.out, "    Type the step id %q to run it, [s]kip, [a]bort: ", s.ID)
			line, err := c.readLine(ctx)
			if err != nil {
				return runbook.Reply{Decision: runbook.Abort}, err
			}
			switch line {
			case s.ID:
				return runbook.Reply{Decision: runbook.Proceed, Typed: line}, nil
			case "s", "skip":
				return runbook.Reply{Decision: runbook.Skip}, nil
			case "a", "abort":
				return runbook.Reply{Decision: runbook.Abort}, nil
			}
			fmt.Fprintf(c.out, "    %q is not the step id\n", line)
		}
		return runbook.Reply{Decision: runbook.Abort}, nil
	case runbook.PromptFailed:
		return c.choose(ctx, "    Step failed. [r]etry, [s]kip, [a]bort: ", map[string]runbook.Decision{
			"r": runbook.Proceed, "retry": runbook.Proceed, "s": runbook.Skip, "skip": runbook.Skip, "a": runbook.Abort, "abort": runbook.Abort})
	}
	return runbook.Reply{Decision: runbook.Abort}, nil
}

func (c *stdinConfirmer) choose(ctx context.Context, question string, answers map[string]runbook.Decision) (runbook.Reply, error) {
	for {
		fmt.Fprint(c.out, question)
		line, err := c.readLine(ctx)
		if err != nil {
			return runbook.Reply{Decision: runbook.Abort}, err
		}
		if d, ok := answers[strings.ToLower(line)]; ok {
			return runbook.Reply{Decision: d}, nil
		}
	}
}

// readLine reads one answer; it gives up when ctx is done (Ctrl-C) and treats end of input as abort.
func (c *stdinConfirmer) readLine(ctx context.Context) (string, error) {
	if c.lines == nil {
		c.lines = make(chan string)
		go func() {
			sc := bufio.NewScanner(c.in)
			for sc.Scan() {
				c.lines <- strings.TrimSpace(sc.Text())
			}
			close(c.lines)
		}()
	}
	select {
	case <-ctx.Done():
		fmt.Fprintln(c.out)
		return "", ctx.Err()
	case line, ok := <-c.lines:
		if !ok {
			fmt.Fprintln(c.out, "(end of input: abort)")
			return "a", nil
		}
		return line, nil
	}
}
