package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// binDir holds pganalytics-api, pganalytics and pgactl, built once by TestMain for every test.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := buildBinaries()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	return m.Run()
}

// buildBinaries builds the three commands from the module root into a fresh directory. The
// directory is world-traversable so that, when the tests run as root, programs started as another
// user (the postgres servers' owner) can still reach what sits beside the binaries.
func buildBinaries() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the module root: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("find the module root: not inside a module")
	}
	dir, err := os.MkdirTemp("", "pganalytics-e2e-bin-")
	if err != nil {
		return "", fmt.Errorf("create binary dir: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("create binary dir: %w", err)
	}
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"./cmd/pganalytics-api", "./cmd/pganalytics", "./cmd/pgactl")
	build.Dir = filepath.Dir(gomod)
	if out, err := build.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return dir, nil
}

// bin is the path of one of the built binaries.
func bin(name string) string { return filepath.Join(binDir, name) }
