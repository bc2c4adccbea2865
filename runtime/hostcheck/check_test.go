package hostcheck

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veil-runtime/veil/runtime/config"
)

// fakeHost builds a root tree: files maps host paths to contents; a
// content of "x" makes an executable file, "dev" a file anyone may read
// and write (mode 0666, like a world-accessible device node).
func fakeHost(t *testing.T, files map[string]string) Host {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		switch content {
		case "x":
			mode = 0o755
		case "dev":
			mode = 0o666
		}
		if err := os.WriteFile(full, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(full, mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	return Host{Root: root, Path: []string{"/usr/bin"}}
}

const (
	cpuVMX  = "processor: 0\nflags\t\t: fpu vme vmx sse\n"
	cpuNone = "processor: 0\nflags\t\t: fpu vme sse\n"
)

// readyQEMU is a host where QEMU sandboxes can run under TCG.
func readyQEMU() map[string]string {
	return map[string]string{
		"/proc/cpuinfo":                          cpuNone,
		"/usr/bin/qemu-system-x86_64":            "x",
		"/usr/bin/vhost-device-vsock":            "x",
		"/usr/bin/virtiofsd":                     "x",
		"/usr/share/veil/vmlinux":                "k",
		"/usr/share/veil/initramfs.cpio":         "i",
		"/dev/net/tun":                           "",
		"/sys/fs/cgroup/cgroup.controllers":      "cpu memory pids",
		"/etc/containerd/config.toml":            `runtime_type = "io.containerd.veil.v2"`,
		"/etc/passwd":                            "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		"/etc/group":                             "root:x:0:\nkvm:x:993:\n",
		"/proc/self/status":                      "Name:\tcat\nSeccomp:\t0\nSeccomp_filters:\t0\n",
		"/proc/sys/kernel/seccomp/actions_avail": "kill_process kill_thread trap errno user_notif trace log allow",
	}
}

// v1Dirs are a v1 host's hierarchies, seen without mountinfo.
var v1Dirs = map[string]string{
	"/sys/fs/cgroup/memory/tasks": "", "/sys/fs/cgroup/cpu/tasks": "", "/sys/fs/cgroup/cpuacct/tasks": "", "/sys/fs/cgroup/pids/tasks": "",
}

func with(base map[string]string, set map[string]string, drop ...string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range set {
		out[k] = v
	}
	for _, k := range drop {
		delete(out, k)
	}
	return out
}

func TestRun(t *testing.T) {
	cases := []struct {
		name      string
		files     map[string]string
		cfg       func(c *config.Config)
		ready     bool
		hv, accel string
		want      map[string]Status // check name → status
		detail    map[string]string // check name → substring of detail
	}{
		{name: "qemu under TCG without KVM", files: readyQEMU(), ready: true, hv: "qemu", accel: "tcg",
			want:   map[string]Status{"virtualization": Warn, "vsock": OK, "virtiofsd": OK, "cloud-hypervisor": Warn, "cgroups": OK, "containerd runtime": OK},
			detail: map[string]string{"virtualization": "no hardware virtualization", "cgroups": "v2"}},
		{name: "PVM: /dev/kvm without vmx", files: with(readyQEMU(), map[string]string{"/dev/kvm": ""}), ready: true, hv: "qemu", accel: "tcg",
			want:   map[string]Status{"virtualization": Warn},
			detail: map[string]string{"virtualization": "software KVM (such as PVM)"}},
		{name: "hardware KVM", files: with(readyQEMU(), map[string]string{"/dev/kvm": "dev", "/proc/cpuinfo": cpuVMX}), ready: true, hv: "qemu", accel: "kvm",
			want: map[string]Status{"virtualization": OK, "/dev/kvm group": OK}},
		{name: "hardware KVM, /dev/kvm only for its owner", files: with(readyQEMU(), map[string]string{"/dev/kvm": "", "/proc/cpuinfo": cpuVMX}), hv: "qemu", accel: "kvm",
			want: map[string]Status{"virtualization": OK, "/dev/kvm group": Fail}, detail: map[string]string{"/dev/kvm group": "cannot open it"}},
		{name: "auto picks cloud-hypervisor", files: with(readyQEMU(), map[string]string{"/dev/kvm": "dev", "/dev/net/tun": "dev", "/proc/cpuinfo": cpuVMX, "/usr/bin/cloud-hypervisor": "x"}, "/usr/bin/vhost-device-vsock", "/usr/bin/qemu-system-x86_64"),
			ready: true, hv: "cloud-hypervisor", accel: "kvm",
			want:   map[string]Status{"vsock": OK, "cloud-hypervisor": OK, "qemu": Warn, "seccomp": OK, "/dev/kvm group": OK},
			detail: map[string]string{"vsock": "built-in", "seccomp": "cloud-hypervisor installs its own filters"}},
		{name: "no vhost-device-vsock for qemu", files: with(readyQEMU(), nil, "/usr/bin/vhost-device-vsock"), hv: "qemu", accel: "tcg",
			want: map[string]Status{"vsock": Fail}},
		{name: "no qemu", files: with(readyQEMU(), nil, "/usr/bin/qemu-system-x86_64"), hv: "qemu", accel: "tcg",
			want: map[string]Status{"qemu": Fail}},
		{name: "configured virtiofsd missing", files: readyQEMU(), cfg: func(c *config.Config) { c.Virtiofs.Path = "/opt/virtiofsd" }, hv: "qemu", accel: "tcg",
			want: map[string]Status{"virtiofsd": Fail}, detail: map[string]string{"virtiofsd": "/opt/virtiofsd does not exist"}},
		{name: "configured binary not executable", files: with(readyQEMU(), map[string]string{"/opt/qemu": "not x"}), cfg: func(c *config.Config) { c.Hypervisor.QEMUPath = "/opt/qemu" },
			hv: "qemu", accel: "tcg", want: map[string]Status{"qemu": Fail}, detail: map[string]string{"qemu": "not an executable"}},
		{name: "no kernel", files: with(readyQEMU(), nil, "/usr/share/veil/vmlinux"), hv: "qemu", accel: "tcg",
			want: map[string]Status{"guest kernel": Fail, "guest initramfs": OK}},
		{name: "no tun, hybrid cgroups, containerd without veil", ready: true, hv: "qemu", accel: "tcg",
			files:  with(with(readyQEMU(), v1Dirs), map[string]string{"/sys/fs/cgroup/unified/cgroup.controllers": "", "/etc/containerd/config.toml": "version = 3\n"}, "/dev/net/tun", "/sys/fs/cgroup/cgroup.controllers"),
			want:   map[string]Status{"tun": Warn, "cgroups": OK, "cgroup controllers": OK, "containerd runtime": Warn},
			detail: map[string]string{"cgroups": "hybrid", "containerd runtime": "names no io.containerd.veil.v2"}},
		{name: "cgroup v1", ready: true, hv: "qemu", accel: "tcg",
			files: with(with(readyQEMU(), v1Dirs), nil, "/sys/fs/cgroup/cgroup.controllers"),
			want:  map[string]Status{"cgroups": OK, "cgroup controllers": OK}, detail: map[string]string{"cgroups": "v1"}},
		{name: "cgroup v1 without pids", hv: "qemu", accel: "tcg",
			files: with(with(readyQEMU(), v1Dirs), nil, "/sys/fs/cgroup/cgroup.controllers", "/sys/fs/cgroup/pids/tasks"),
			want:  map[string]Status{"cgroups": OK, "cgroup controllers": Fail}, detail: map[string]string{"cgroup controllers": "pids"}},
		{name: "confinement on a fake root", files: readyQEMU(), ready: true, hv: "qemu", accel: "tcg",
			want:   map[string]Status{"cgroup controllers": OK, "jail uid range": OK, "jail namespaces and mount API": Skip, "seccomp": OK, "/dev/kvm group": Skip},
			detail: map[string]string{"jail namespaces and mount API": "not the local host", "seccomp": "not probed (not the local host)", "/dev/kvm group": "TCG"}},
		{name: "jail and cgroups off", files: readyQEMU(), ready: true, hv: "qemu", accel: "tcg",
			cfg:    func(c *config.Config) { c.Jail.Enabled, c.Cgroups.Enabled = false, false },
			want:   map[string]Status{"cgroup controllers": OK, "jail uid range": OK, "jail namespaces and mount API": Warn, "seccomp": OK},
			detail: map[string]string{"jail namespaces and mount API": "run as root", "seccomp": "without -sandbox"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			if tc.cfg != nil {
				tc.cfg(cfg)
			}
			rep := Run(context.Background(), cfg, fakeHost(t, tc.files), Options{})
			if rep.Ready != tc.ready || rep.Hypervisor != tc.hv || rep.Accel != tc.accel {
				t.Errorf("ready %v hypervisor %s accel %s, want %v %s %s\n%+v", rep.Ready, rep.Hypervisor, rep.Accel, tc.ready, tc.hv, tc.accel, rep.Results)
			}
			got := map[string]Result{}
			for _, r := range rep.Results {
				got[r.Name] = r
				if r.Status != OK && r.Status != Skip && r.Fix == "" {
					t.Errorf("%s is %s without a fix", r.Name, r.Status)
				}
			}
			for name, want := range tc.want {
				if got[name].Status != want {
					t.Errorf("%s: %s (%s), want %s", name, got[name].Status, got[name].Detail, want)
				}
			}
			for name, sub := range tc.detail {
				if !strings.Contains(got[name].Detail, sub) {
					t.Errorf("%s detail %q lacks %q", name, got[name].Detail, sub)
				}
			}
		})
	}
}

func TestContainerdConfigPath(t *testing.T) {
	h := fakeHost(t, map[string]string{"/etc/cd.toml": "runtime_type = 'io.containerd.veil.v2'"})
	cases := []struct {
		name string
		path string
		want Status
	}{
		{"given path names veil", "/etc/cd.toml", OK},
		{"default path missing", "", Warn},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkContainerd(h, tc.path); got.Status != tc.want {
				t.Fatalf("%+v, want %s", got, tc.want)
			}
		})
	}
}
