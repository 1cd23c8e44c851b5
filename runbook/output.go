package runbook

import (
	"bytes"
	"strconv"
	"strings"
	"sync"
	"unicode"
)

const (
	// maxLineBytes splits runaway lines (a binary blob on stdout) so one line cannot grow unbounded.
	maxLineBytes = 8 << 10
	// maxCapturedBytes is how much of a step's output the audit log keeps (the tail).
	maxCapturedBytes = 64 << 10
)

// lineWriter turns a byte stream (a process's stdout+stderr, a check's report) into redacted,
// terminal-safe lines: each goes to emit and to a bounded capture for the audit log.
type lineWriter struct {
	mu      sync.Mutex
	partial []byte
	redact  func(string) string
	emit    func(line string)

	lines   []string // captured tail
	size    int
	dropped int // lines dropped from the head of the capture
}

func newLineWriter(redact func(string) string, emit func(string)) *lineWriter {
	return &lineWriter{redact: redact, emit: emit}
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.partial[:i]))
		w.partial = w.partial[i+1:]
	}
	for len(w.partial) > maxLineBytes {
		w.line(string(w.partial[:maxLineBytes]))
		w.partial = w.partial[maxLineBytes:]
	}
	return len(p), nil
}

// println writes one whole line (built-in checks report line by line).
func (w *lineWriter) println(s string) { _, _ = w.Write([]byte(s + "\n")) }

// flush emits a trailing line without a newline.
func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		w.line(string(w.partial))
		w.partial = nil
	}
}

func (w *lineWriter) line(raw string) {
	l := w.redact(sanitizeLine(strings.TrimSuffix(raw, "\r")))
	w.lines = append(w.lines, l)
	w.size += len(l) + 1
	for w.size > maxCapturedBytes && len(w.lines) > 1 {
		w.size -= len(w.lines[0]) + 1
		w.lines = w.lines[1:]
		w.dropped++
	}
	if w.emit != nil {
		w.emit(l)
	}
}

// captured is the tail of the output, for the audit log.
func (w *lineWriter) captured() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := strings.Join(w.lines, "\n")
	if w.dropped > 0 {
		out = "[" + strconv.Itoa(w.dropped) + " earlier lines not kept]\n" + out
	}
	return out
}

// sanitizeLine replaces control characters (escape sequences, bells, backspaces) so that output is
// safe to show in a terminal or a TUI; tabs are kept.
func sanitizeLine(s string) string {
	clean := true
	for _, r := range s {
		if r != '\t' && (unicode.IsControl(r) || r == unicode.ReplacementChar) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r != '\t' && (unicode.IsControl(r) || r == unicode.ReplacementChar) {
			return '?'
		}
		return r
	}, s)
}
