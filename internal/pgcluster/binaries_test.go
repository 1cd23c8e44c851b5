package pgcluster

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseSpec(t *testing.T) {
	tests := []struct {
		in      string
		want    Spec
		wantErr bool
	}{
		{in: "", want: Spec{}},
		{in: "system", want: Spec{}},
		{in: " 16 ", want: Spec{Major: 16}},
		{in: "13", want: Spec{Major: 13}},
		{in: "18", want: Spec{Major: 18}},
		{in: "16.14.0-beta.17", want: Spec{Major: 16, NPMVersion: "16.14.0-beta.17"}},
		{in: "17.2.0", want: Spec{Major: 17, NPMVersion: "17.2.0"}},
		{in: "12", wantErr: true},
		{in: "12.22.0-beta.1", wantErr: true},
		{in: "16.1", wantErr: true},
		{in: "sixteen", wantErr: true},
		{in: "-16", wantErr: true},
		{in: "16.14.0-beta.17; rm -rf /", wantErr: true},
		{in: "100", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSpec(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseSpec(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseSpec(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"", "16", "16.14.0-beta.17", "1.2.3-", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := ParseSpec(s)
		if err == nil && spec.Major != 0 && spec.Major < MinMajor {
			t.Errorf("ParseSpec(%q) accepted major %d", s, spec.Major)
		}
	})
}

func TestNewestNPMVersion(t *testing.T) {
	published := []string{
		"13.22.0-beta.15", "13.23.0-beta.16",
		"16.9.0-beta.15", "16.10.0-beta.15", "16.13.0-beta.16", "16.13.0-beta.17", "16.14.0-beta.17",
		"17.2.0-beta.9", "17.2.0-beta.10", "17.10.0-beta.17", "17.9.0-beta.17",
		"18.1.0-beta.16", "18.1.0", "18.1.0-rc.1",
		"not-a-version",
	}
	tests := []struct {
		name     string
		versions []string
		major    int
		want     string
		wantErr  bool
	}{
		{name: "newest minor", versions: published, major: 16, want: "16.14.0-beta.17"},
		{name: "minor compares as a number", versions: published, major: 17, want: "17.10.0-beta.17"},
		{name: "old major", versions: published, major: 13, want: "13.23.0-beta.16"},
		{name: "release beats its pre-releases", versions: published, major: 18, want: "18.1.0"},
		{name: "numeric pre-release field", versions: []string{"17.2.0-beta.9", "17.2.0-beta.10"}, major: 17, want: "17.2.0-beta.10"},
		{name: "longer pre-release wins a tie", versions: []string{"16.1.0-beta", "16.1.0-beta.1"}, major: 16, want: "16.1.0-beta.1"},
		{name: "numeric before alphanumeric", versions: []string{"16.1.0-beta.x", "16.1.0-beta.2"}, major: 16, want: "16.1.0-beta.x"},
		{name: "major 1 is not major 16", versions: []string{"1.6.0"}, major: 16, wantErr: true},
		{name: "missing major", versions: published, major: 14, wantErr: true},
		{name: "nothing published", major: 16, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewestNPMVersion(tt.versions, tt.major)
			if (err != nil) != tt.wantErr {
				t.Fatalf("NewestNPMVersion error = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("NewestNPMVersion = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNewestCached(t *testing.T) {
	cache := t.TempDir()
	for _, v := range []string{"16.13.0-beta.17", "16.14.0-beta.17", "17.10.0-beta.17"} {
		mustWrite(t, filepath.Join(cache, v, "bin", "postgres"), "")
	}
	// An interrupted install holds no bin/postgres and must not be picked.
	if err := os.MkdirAll(filepath.Join(cache, "16.15.0-beta.1", "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	for major, want := range map[int]string{16: "16.14.0-beta.17", 17: "17.10.0-beta.17", 18: ""} {
		if got := newestCached(cache, major); got != want {
			t.Errorf("newestCached(%d) = %q, want %q", major, got, want)
		}
	}
}

func TestUnpackNative(t *testing.T) {
	symlinks := `[{"source":"native/lib/libpq.so.5.16","target":"native/lib/libpq.so.5"}]`
	tests := []struct {
		name    string
		entries map[string]string
		wantErr string
	}{
		{
			name: "package",
			entries: map[string]string{
				"package/package.json":             "{}",
				"package/native/bin/postgres":      "#!",
				"package/native/lib/libpq.so.5.16": "elf",
				"package/native/pg-symlinks.json":  symlinks,
			},
		},
		{
			name: "entry escaping the package is skipped",
			entries: map[string]string{
				"package/native/bin/postgres":      "#!",
				"package/native/lib/libpq.so.5.16": "elf",
				"package/native/pg-symlinks.json":  symlinks,
				"package/native/../../evil":        "x",
			},
		},
		{
			name: "symlink escaping the package",
			entries: map[string]string{
				"package/native/pg-symlinks.json": `[{"source":"native/lib/x","target":"native/../../etc/x"}]`,
			},
			wantErr: "escapes",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tarball := filepath.Join(dir, "pkg.tgz")
			mustWrite(t, tarball, string(makeTarball(t, tt.entries)))
			tree := filepath.Join(dir, "tree")
			err := unpackNative(tarball, tree)
			if err == nil {
				err = linkLibraries(tree)
			}
			if _, err := os.Stat(filepath.Join(dir, "evil")); err == nil {
				t.Fatal("an entry was written outside the tree")
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			info, err := os.Stat(filepath.Join(tree, "bin", "postgres"))
			if err != nil || info.Mode().Perm() != 0o755 {
				t.Fatalf("bin/postgres: %v, mode %v; want an executable", err, info)
			}
			target, err := os.Readlink(filepath.Join(tree, "lib", "libpq.so.5"))
			if err != nil || target != "libpq.so.5.16" {
				t.Fatalf("lib/libpq.so.5 -> %q (%v), want libpq.so.5.16", target, err)
			}
			if _, err := os.Stat(filepath.Join(tree, "package.json")); err == nil {
				t.Error("files outside native/ were unpacked")
			}
		})
	}
}

func makeTarball(t *testing.T, entries map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, body := range entries {
		mode := int64(0o644)
		if strings.Contains(name, "/bin/") {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func mustWrite(t *testing.T, name, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
