package hostcheck

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/veil-runtime/veil/runtime/jail"
)

// Host is where the checks look. Production uses LocalHost(); tests point
// Root at a temporary tree that mimics /proc, /dev, /sys and /etc.
type Host struct {
	// Root prefixes every absolute path the checks read ("/" for the real
	// host). Configured binary paths are read below it too.
	Root string
	// Path is the list of directories searched for binaries the config
	// does not name (as in $PATH), each below Root.
	Path []string
	// TryJail, when set, runs /usr/bin/true confined by the Spec and
	// reports why it did not run (a *SkipError when it could not be
	// tried). Nil on a fake root: the jail check reports SKIP.
	TryJail func(ctx context.Context, s *jail.Spec) error
	// ProbeQEMUSandbox, when set, starts the QEMU binary at path with the
	// seccomp filter (-sandbox) Veil gives a jailed QEMU and reports why
	// it did not start. Nil on a fake root: the probe is not made.
	ProbeQEMUSandbox func(ctx context.Context, path string) error
}

// LocalHost is this machine, with $PATH as the search path; its jail
// and QEMU probes start real processes (the jail's needs root and a
// binary that calls reexec.Init first thing in main).
func LocalHost() Host {
	return Host{Root: "/", Path: filepath.SplitList(os.Getenv("PATH")), TryJail: TryJail, ProbeQEMUSandbox: ProbeQEMUSandbox}
}

// SkipError reports a probe that could not be made here (not root, no
// binary): its check reports SKIP with Reason.
type SkipError struct{ Reason string }

func (e *SkipError) Error() string { return e.Reason }

// path maps an absolute host path below Root.
func (h Host) path(p string) string {
	if h.Root == "" || h.Root == "/" {
		return p
	}
	return filepath.Join(h.Root, p)
}

// ReadFile reads the host file p.
func (h Host) ReadFile(p string) ([]byte, error) { return os.ReadFile(h.path(p)) }

// Exists reports whether the host path p exists.
func (h Host) Exists(p string) bool {
	_, err := os.Stat(h.path(p))
	return err == nil
}

// Stat returns the host file p's information (following symlinks).
func (h Host) Stat(p string) (os.FileInfo, error) { return os.Stat(h.path(p)) }

// OpenRW opens the host file p for reading and writing and closes it; it
// reports why it cannot.
func (h Host) OpenRW(p string) error {
	f, err := os.OpenFile(h.path(p), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

// FindBinary resolves a binary: the configured path when set (which must
// be an executable file), else name on the search path. It returns the
// host path (without Root).
func (h Host) FindBinary(configured, name string) (string, error) {
	if configured != "" {
		return configured, h.executable(configured)
	}
	for _, dir := range h.Path {
		if dir == "" || !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, name)
		if h.executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found on PATH", name)
}

func (h Host) executable(p string) error {
	st, err := os.Stat(h.path(p))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s does not exist", p)
		}
		return err
	}
	if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}
