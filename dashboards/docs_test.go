package dashboards_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var docsFile = filepath.Join("..", "docs", "dashboards.md")

// TestDocs keeps docs/dashboards.md true to the files: it names every dashboard by uid, every panel
// by title and every alert rule, and shows the reader role's SQL exactly as the script runs it.
func TestDocs(t *testing.T) {
	b, err := os.ReadFile(docsFile)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, d := range loadDashboards(t) {
		if !strings.Contains(doc, "`"+d.UID+"`") {
			t.Errorf("docs lack dashboard uid %s (%s)", d.UID, d.file)
		}
		for _, p := range d.allPanels() {
			if p.Type != "row" && !strings.Contains(doc, "| "+p.Title+" |") {
				t.Errorf("docs lack a row for panel %q of %s", p.Title, d.file)
			}
		}
	}

	rules, err := os.ReadFile(filepath.Join(prometheusDir, "rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^\s+- alert: (\w+)$`).FindAllStringSubmatch(string(rules), -1) {
		if !strings.Contains(doc, "| `"+m[1]+"` |") {
			t.Errorf("docs lack a row for alert %s", m[1])
		}
	}

	script, err := os.ReadFile(readerSQL)
	if err != nil {
		t.Fatal(err)
	}
	want := sqlStatements(string(script))
	block := regexp.MustCompile("(?s)```sql\n(.*?)```").FindStringSubmatch(doc)
	if block == nil {
		t.Fatal("docs show no ```sql block")
	}
	if got := sqlStatements(block[1]); got != want {
		t.Errorf("the docs' SQL differs from %s:\ndocs:\n%s\nscript:\n%s", readerSQL, got, want)
	}
}

// sqlStatements drops comments, blank lines and indentation, to compare SQL texts.
func sqlStatements(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "--") {
			continue
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}
