package pgcluster

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// ServerUser is the OS user the servers run as when this process is root.
const ServerUser = "postgres"

// serverCredential is whom initdb, pg_ctl and postgres run as: nil (this
// process's user) unless we are root, which they refuse.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(ServerUser)
	if err != nil {
		return nil, fmt.Errorf("running as root needs the %s user to run postgresql: %w", ServerUser, err)
	}
	uid, errU := strconv.ParseUint(u.Uid, 10, 32)
	gid, errG := strconv.ParseUint(u.Gid, 10, 32)
	if errU != nil || errG != nil {
		return nil, fmt.Errorf("user %s: unexpected ids %s:%s", ServerUser, u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// chown gives name to the server user; a no-op when not root.
func chown(name string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	if err := os.Lchown(name, int(cred.Uid), int(cred.Gid)); err != nil {
		return fmt.Errorf("chown %s: %w", name, err)
	}
	return nil
}

// checkTraversable fails unless the server user may enter dir: as root, a
// base dir under /root would otherwise fail later, deep inside initdb.
func checkTraversable(dir string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	for d := dir; ; d = filepath.Dir(d) {
		info, err := os.Stat(d)
		if err != nil {
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		perm := info.Mode().Perm()
		var may bool
		switch {
		case st.Uid == cred.Uid:
			may = perm&0o100 != 0
		case st.Gid == cred.Gid:
			may = perm&0o010 != 0
		default:
			may = perm&0o001 != 0
		}
		if !may {
			return fmt.Errorf("the %s user cannot enter %s (mode %v), so cannot reach %s: pick a base dir it can traverse, e.g. under /tmp or /var/lib", ServerUser, d, perm, dir)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// copyDataDir copies a stopped cluster's data directory from src to dst (which
// must not exist), owned by the server user, leaving out the entries in skip
// (slash-separated paths relative to src) and the contents of pg_replslot.
func copyDataDir(src, dst string, skip map[string]bool) error {
	cred, err := serverCredential()
	if err != nil {
		return err
	}
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if skip[rel] || filepath.ToSlash(filepath.Dir(rel)) == "pg_replslot" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			err = os.Mkdir(target, info.Mode().Perm())
		case info.Mode().IsRegular():
			err = copyFile(path, target, info.Mode().Perm())
		default:
			return fmt.Errorf("copy %s: unexpected file type %s", path, info.Mode().Type())
		}
		if err != nil {
			return err
		}
		return chown(target, cred)
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	return errors.Join(err, out.Close())
}

// writeServerFile writes a file the server will read, owned by the server user.
func writeServerFile(name string, data []byte) error {
	cred, err := serverCredential()
	if err != nil {
		return err
	}
	if err := os.WriteFile(name, data, 0o600); err != nil {
		return err
	}
	return chown(name, cred)
}
