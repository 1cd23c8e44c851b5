package pgcluster

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// nativePrefix is where the npm tarball keeps the PostgreSQL tree.
const nativePrefix = "package/native/"

// installNPM unpacks the npm build of version into cacheDir/version unless it
// is there already, and returns that directory. A lock file serialises test
// binaries installing at the same time; the tree appears by an atomic rename.
func installNPM(ctx context.Context, cacheDir, version string) (string, error) {
	if npmVersionRe.FindStringSubmatch(version) == nil {
		return "", fmt.Errorf("invalid npm version %q", version)
	}
	dir := filepath.Join(cacheDir, version)
	if _, err := os.Stat(filepath.Join(dir, "bin", "postgres")); err == nil {
		return dir, nil
	}
	pkg, err := npmPackage()
	if err != nil {
		return "", err
	}
	if err := mkdirAllReadable(cacheDir); err != nil {
		return "", fmt.Errorf("create cache dir: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(cacheDir, ".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(dir, "bin", "postgres")); err == nil {
		return dir, nil
	}

	tmp, err := os.MkdirTemp(cacheDir, ".install-")
	if err != nil {
		return "", fmt.Errorf("create install dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "npm", "pack", pkg+"@"+version, "--json", "--pack-destination", tmp)
	cmd.Dir = tmp
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("npm pack %s@%s: %w%s", pkg, version, err, stderrOf(err))
	}
	var packed []struct {
		Filename string `json:"filename"`
	}
	if err := json.Unmarshal(out, &packed); err != nil || len(packed) != 1 || !filepath.IsLocal(packed[0].Filename) {
		return "", fmt.Errorf("npm pack %s@%s: unexpected output %q", pkg, version, out)
	}
	tree := filepath.Join(tmp, "tree")
	if err := unpackNative(filepath.Join(tmp, packed[0].Filename), tree); err != nil {
		return "", fmt.Errorf("unpack %s@%s: %w", pkg, version, err)
	}
	if err := linkLibraries(tree); err != nil {
		return "", fmt.Errorf("unpack %s@%s: %w", pkg, version, err)
	}
	if err := readableDirs(tree); err != nil {
		return "", fmt.Errorf("unpack %s@%s: %w", pkg, version, err)
	}
	if err := os.Rename(tree, dir); err != nil {
		return "", fmt.Errorf("install %s@%s: %w", pkg, version, err)
	}
	return dir, nil
}

// unpackNative extracts the native/ part of an npm tarball into dst, with
// world-readable modes. Entries outside native/ are skipped; any that would
// escape dst is refused.
func unpackNative(tarball, dst string) error {
	f, err := os.Open(tarball)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name, ok := strings.CutPrefix(path.Clean(h.Name), nativePrefix)
		if !ok || h.Typeflag != tar.TypeReg {
			continue // npm tarballs hold regular files only; directories are implied
		}
		if !filepath.IsLocal(name) {
			return fmt.Errorf("entry %q escapes the package", h.Name)
		}
		target := filepath.Join(dst, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if h.FileInfo().Mode()&0o111 != 0 {
			mode = 0o755
		}
		if err := writeFrom(target, tr, mode); err != nil {
			return err
		}
	}
}

func writeFrom(target string, r io.Reader, mode os.FileMode) error {
	out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, r)
	if err == nil {
		err = out.Chmod(mode) // the umask must not hide the tree from the postgres user
	}
	return errors.Join(err, out.Close())
}

// mkdirAllReadable is os.MkdirAll making the directories it creates
// world-readable whatever the umask: the servers run as another user.
func mkdirAllReadable(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := mkdirAllReadable(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil
		}
		return err
	}
	return os.Chmod(dir, 0o755)
}

// readableDirs makes every directory under root world-readable.
func readableDirs(root string) error {
	return filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		return os.Chmod(p, 0o755)
	})
}

// linkLibraries creates the shared-library symlinks npm packages cannot carry,
// as listed in pg-symlinks.json (paths relative to the package, under native/).
func linkLibraries(tree string) error {
	raw, err := os.ReadFile(filepath.Join(tree, "pg-symlinks.json"))
	if err != nil {
		return err
	}
	var links []struct {
		Source string `json:"source"`
		Target string `json:"target"`
	}
	if err := json.Unmarshal(raw, &links); err != nil {
		return fmt.Errorf("pg-symlinks.json: %w", err)
	}
	for _, l := range links {
		src, okS := strings.CutPrefix(path.Clean(l.Source), "native/")
		dst, okT := strings.CutPrefix(path.Clean(l.Target), "native/")
		if !okS || !okT || !filepath.IsLocal(src) || !filepath.IsLocal(dst) {
			return fmt.Errorf("pg-symlinks.json: link %q -> %q escapes the package", l.Target, l.Source)
		}
		rel, err := filepath.Rel(filepath.Dir(dst), src)
		if err != nil {
			return err
		}
		if err := os.Symlink(rel, filepath.Join(tree, filepath.FromSlash(dst))); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	return nil
}

// lockFile takes an exclusive flock on name, giving up when ctx ends.
func lockFile(ctx context.Context, name string) (unlock func(), err error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	locked := make(chan error, 1)
	go func() { locked <- syscall.Flock(int(f.Fd()), syscall.LOCK_EX) }()
	select {
	case err := <-locked:
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", name, err)
		}
		return func() { f.Close() }, nil
	case <-ctx.Done():
		// Closing the file releases the lock should the flock succeed later.
		go func() { <-locked; f.Close() }()
		return nil, fmt.Errorf("lock %s: %w", name, ctx.Err())
	}
}
