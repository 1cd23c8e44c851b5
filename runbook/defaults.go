package runbook

import (
	"embed"
	"io/fs"
	"sort"
	"strings"
)

// DefaultSource is the Runbook.Source of the shipped runbook.
const DefaultSource = "default"

// The shipped runbook (the v3.2.0 deployment plan made executable) and environment files.
var (
	//go:embed defaults/runbook.toml
	defaultRunbook string
	//go:embed defaults/env/*.toml
	defaultEnvs embed.FS
)

// DefaultRunbookTOML is the shipped runbook's source text, e.g. to start writing your own.
func DefaultRunbookTOML() []byte { return []byte(defaultRunbook) }

// Default parses the shipped runbook.
func Default() (*Runbook, error) { return Parse(DefaultSource, DefaultRunbookTOML()) }

// Load returns the shipped runbook for "" or DefaultSource, else parses the file at path.
func Load(path string) (*Runbook, error) {
	if path == "" || path == DefaultSource {
		return Default()
	}
	return ParseFile(path)
}

// EnvironmentNames lists the shipped environments.
func EnvironmentNames() []string {
	entries, _ := fs.ReadDir(defaultEnvs, "defaults/env")
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".toml"))
	}
	sort.Strings(names)
	return names
}

// EnvironmentTOML returns a shipped environment file's text.
func EnvironmentTOML(name string) ([]byte, bool) {
	data, err := defaultEnvs.ReadFile("defaults/env/" + name + ".toml")
	return data, err == nil
}
