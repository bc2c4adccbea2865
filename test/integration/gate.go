package integration

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// EnvVar turns integration tests on when set to "1".
const EnvVar = "VEIL_INTEGRATION"

// Env is the host as the gate sees it. HostEnv is the real one; the
// gate's own tests inject theirs.
type Env struct {
	Getenv  func(key string) string
	Geteuid func() int
	// Stat stats a file.
	Stat func(path string) (fs.FileInfo, error)
	// OpenRW opens path read-write and closes it again (is /dev/kvm usable?).
	OpenRW func(path string) error
	// LookPath resolves a binary as the harness does (LookPath over BinDirs).
	LookPath func(name string) (string, error)
	// FSType returns the file system magic of path (statfs f_type).
	FSType func(path string) (int64, error)
}

// HostEnv is the real host.
func HostEnv() Env {
	return Env{
		Getenv:  os.Getenv,
		Geteuid: os.Geteuid,
		Stat:    os.Stat,
		OpenRW: func(path string) error {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				return err
			}
			return f.Close()
		},
		LookPath: func(name string) (string, error) { return LookPath(name, BinDirs()) },
		FSType: func(path string) (int64, error) {
			var st unix.Statfs_t
			if err := unix.Statfs(path, &st); err != nil {
				return 0, err
			}
			return st.Type, nil
		},
	}
}

// Requirement is one thing an integration test needs from the host.
type Requirement struct {
	// Name says what is needed, in the skip reason.
	Name string
	// Missing says what is missing, or returns nil when the host has it.
	Missing func(Env) error
}

// Root: the test runs as root.
var Root = Requirement{Name: "root", Missing: func(e Env) error {
	if e.Geteuid() != 0 {
		return errors.New("not running as root: integration tests need root")
	}
	return nil
}}

// kvmDevice and qemuBinary are what VM looks for.
const (
	kvmDevice  = "/dev/kvm"
	qemuBinary = "qemu-system-x86_64"
)

// VM: the host can run a micro-VM: KVM is usable, or QEMU is there to
// run one under TCG.
var VM = Requirement{Name: "KVM or QEMU", Missing: func(e Env) error {
	kerr := e.OpenRW(kvmDevice)
	if kerr == nil {
		return nil
	}
	if _, qerr := e.LookPath(qemuBinary); qerr != nil {
		return fmt.Errorf("cannot run a VM: %s not usable (%w) and no QEMU for TCG (%w)", kvmDevice, kerr, qerr)
	}
	return nil
}}

// Cgroups: there is a cgroup file system to work in: cgroup2 at
// /sys/fs/cgroup, or a v1 memory hierarchy.
var Cgroups = Requirement{Name: "cgroupfs", Missing: func(e Env) error {
	if t, err := e.FSType("/sys/fs/cgroup"); err == nil && t == unix.CGROUP2_SUPER_MAGIC {
		return nil
	}
	if t, err := e.FSType("/sys/fs/cgroup/memory"); err == nil && t == unix.CGROUP_SUPER_MAGIC {
		return nil
	}
	return errors.New("no cgroupfs: neither cgroup2 nor a v1 memory hierarchy at /sys/fs/cgroup")
}}

// Binaries: each named binary is found in <output>/bin, <cache>/bin or
// on $PATH (as the harness finds them).
func Binaries(names ...string) Requirement {
	return Requirement{Name: strings.Join(names, ", "), Missing: func(e Env) error {
		var errs []error
		for _, n := range names {
			if _, err := e.LookPath(n); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}}
}

// File: path exists; hint says how to get it (e.g. "apt-get install
// busybox-static").
func File(path, hint string) Requirement {
	return Requirement{Name: path, Missing: func(e Env) error {
		if _, err := e.Stat(path); err != nil {
			return fmt.Errorf("%s is missing (%s): %w", path, hint, err)
		}
		return nil
	}}
}

// Check is the gate: unless env has VEIL_INTEGRATION=1 it returns a
// one-line reason to skip; with it, an error naming every requirement the
// host lacks (the test must then fail, not skip).
func Check(env Env, reqs ...Requirement) (skip string, err error) {
	if env.Getenv(EnvVar) != "1" {
		names := make([]string, 0, len(reqs))
		for _, r := range reqs {
			names = append(names, r.Name)
		}
		need := ""
		if len(names) > 0 {
			need = " (needs " + strings.Join(names, "; ") + ")"
		}
		return "integration test" + need + ": set " + EnvVar + "=1 and run as root (make test)", nil
	}
	var errs []error
	for _, r := range reqs {
		if m := r.Missing(env); m != nil {
			errs = append(errs, m)
		}
	}
	if len(errs) > 0 {
		return "", fmt.Errorf("%s=1 but %w", EnvVar, errors.Join(errs...))
	}
	return "", nil
}

// Require gates t on the real host (see Check): it skips t with a
// one-line reason unless VEIL_INTEGRATION=1, and fails it when
// VEIL_INTEGRATION=1 but a requirement is missing.
func Require(t testing.TB, reqs ...Requirement) {
	t.Helper()
	skip, err := Check(HostEnv(), reqs...)
	if err != nil {
		t.Fatal(err)
	}
	if skip != "" {
		t.Skip(skip)
	}
}
