package integration

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeHost is an Env over fixed answers.
type fakeHost struct {
	integration bool
	euid        int
	files       map[string]bool // Stat succeeds
	kvm         bool            // /dev/kvm opens read-write
	bins        map[string]bool // LookPath succeeds
	fsTypes     map[string]int64
}

func (h fakeHost) env() Env {
	return Env{
		Getenv: func(k string) string {
			if k == EnvVar && h.integration {
				return "1"
			}
			return ""
		},
		Geteuid: func() int { return h.euid },
		Stat: func(p string) (fs.FileInfo, error) {
			if h.files[p] {
				return nil, nil
			}
			return nil, fs.ErrNotExist
		},
		OpenRW: func(string) error {
			if h.kvm {
				return nil
			}
			return fs.ErrPermission
		},
		LookPath: func(n string) (string, error) {
			if h.bins[n] {
				return "/bin/" + n, nil
			}
			return "", errors.New(n + " not found")
		},
		FSType: func(p string) (int64, error) {
			if t, ok := h.fsTypes[p]; ok {
				return t, nil
			}
			return 0, fs.ErrNotExist
		},
	}
}

func TestCheck(t *testing.T) {
	full := fakeHost{
		integration: true,
		kvm:         true,
		files:       map[string]bool{"/bin/busybox": true},
		bins:        map[string]bool{"virtiofsd": true, "nsenter": true, qemuBinary: true},
		fsTypes:     map[string]int64{"/sys/fs/cgroup": unix.CGROUP2_SUPER_MAGIC},
	}
	with := func(f func(*fakeHost)) fakeHost {
		h := full
		f(&h)
		return h
	}
	all := []Requirement{Root, VM, Cgroups, Binaries("virtiofsd", "nsenter"), File("/bin/busybox", "apt-get install busybox-static")}
	cases := []struct {
		name     string
		host     fakeHost
		reqs     []Requirement
		wantSkip string   // substring of the skip reason; "" means no skip
		wantErr  []string // substrings of the failure; nil means none
	}{
		{name: "off skips", host: with(func(h *fakeHost) { h.integration = false }), reqs: all, wantSkip: "set VEIL_INTEGRATION=1"},
		{name: "off skips naming needs", host: with(func(h *fakeHost) { h.integration = false }), reqs: []Requirement{Binaries("virtiofsd")}, wantSkip: "needs virtiofsd"},
		{name: "off skips even when missing", host: fakeHost{euid: 1000}, reqs: all, wantSkip: "integration test"},
		{name: "all there runs", host: full, reqs: all},
		{name: "no requirements runs", host: full},
		{name: "not root fails", host: with(func(h *fakeHost) { h.euid = 1000 }), reqs: []Requirement{Root}, wantErr: []string{"VEIL_INTEGRATION=1 but", "not running as root"}},
		{name: "TCG without KVM runs", host: with(func(h *fakeHost) { h.kvm = false }), reqs: []Requirement{VM}},
		{name: "no KVM no QEMU fails", host: with(func(h *fakeHost) { h.kvm = false; h.bins = map[string]bool{} }), reqs: []Requirement{VM}, wantErr: []string{"cannot run a VM", "/dev/kvm"}},
		{name: "KVM without QEMU runs", host: with(func(h *fakeHost) { h.bins = map[string]bool{} }), reqs: []Requirement{VM}},
		{name: "missing binary fails", host: full, reqs: []Requirement{Binaries("virtiofsd", "no-such-binary")}, wantErr: []string{"no-such-binary not found"}},
		{name: "missing file fails with hint", host: with(func(h *fakeHost) { h.files = nil }), reqs: []Requirement{File("/bin/busybox", "apt-get install busybox-static")}, wantErr: []string{"/bin/busybox is missing", "busybox-static"}},
		{name: "cgroup v1 memory runs", host: with(func(h *fakeHost) { h.fsTypes = map[string]int64{"/sys/fs/cgroup/memory": unix.CGROUP_SUPER_MAGIC} }), reqs: []Requirement{Cgroups}},
		{name: "no cgroupfs fails", host: with(func(h *fakeHost) { h.fsTypes = nil }), reqs: []Requirement{Cgroups}, wantErr: []string{"no cgroupfs"}},
		{name: "every missing one named", host: fakeHost{integration: true, euid: 1000}, reqs: all, wantErr: []string{"not running as root", "cannot run a VM", "no cgroupfs", "virtiofsd not found", "nsenter not found", "/bin/busybox is missing"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			skip, err := Check(tc.host.env(), tc.reqs...)
			if tc.wantSkip == "" && skip != "" {
				t.Errorf("skipped: %q", skip)
			}
			if tc.wantSkip != "" {
				if !strings.Contains(skip, tc.wantSkip) {
					t.Errorf("skip %q, want it to contain %q", skip, tc.wantSkip)
				}
				if strings.Contains(skip, "\n") {
					t.Errorf("skip reason %q is not one line", skip)
				}
			}
			if tc.wantErr == nil && err != nil {
				t.Errorf("failed: %v", err)
			}
			if tc.wantErr != nil {
				if err == nil {
					t.Fatal("did not fail")
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
			}
		})
	}
}

// TestRequireFailsWhenBinaryMissing runs the real gate under
// VEIL_INTEGRATION=1 on a binary no host has: it must fail, not skip.
func TestRequireFailsWhenBinaryMissing(t *testing.T) {
	env := HostEnv()
	env.Getenv = func(k string) string {
		if k == EnvVar {
			return "1"
		}
		return ""
	}
	skip, err := Check(env, Binaries("veil-no-such-binary"))
	if skip != "" {
		t.Fatalf("skipped: %q", skip)
	}
	if err == nil || !strings.Contains(err.Error(), "veil-no-such-binary not found") {
		t.Fatalf("error %v, want veil-no-such-binary not found", err)
	}
}
