package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veil-runtime/veil/runtime/hostcheck"
	"github.com/veil-runtime/veil/runtime/inspect"
	"github.com/veil-runtime/veil/test/integration"
)

// cmdCase is one veil invocation and what it must print.
type cmdCase struct {
	name     string
	args     []string
	code     int
	out      []string // substrings of stdout
	notOut   []string
	errOut   []string // substrings of stderr
	checkOut func(t *testing.T, out string)
}

func runCases(t *testing.T, w *world, cases []cmdCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := w.run(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			for _, s := range tc.out {
				if !strings.Contains(out, s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tc.notOut {
				if strings.Contains(out, s) {
					t.Errorf("stdout has %q:\n%s", s, out)
				}
			}
			for _, s := range tc.errOut {
				if !strings.Contains(errOut, s) {
					t.Errorf("stderr lacks %q:\n%s", s, errOut)
				}
			}
			if tc.checkOut != nil {
				tc.checkOut(t, out)
			}
		})
	}
}

// readyHost fills w's fake host with what a QEMU sandbox needs under TCG,
// the confinement included.
func readyHost(t *testing.T, w *world) string {
	t.Helper()
	host := filepath.Join(w.root, "host")
	for _, p := range []string{"/bin/qemu-system-x86_64", "/bin/vhost-device-vsock", "/bin/virtiofsd", "/k/vmlinux", "/k/initrd", "/dev/kvm", "/proc/cpuinfo"} {
		writeFile(t, filepath.Join(host, p), "")
	}
	writeFile(t, filepath.Join(host, "/etc/cd.toml"), `runtime_type = "io.containerd.veil.v2"`)
	writeFile(t, filepath.Join(host, "/sys/fs/cgroup/cgroup.controllers"), "cpuset cpu io memory pids\n")
	writeFile(t, filepath.Join(host, "/proc/self/status"), "Name:\tveil\nSeccomp:\t0\nSeccomp_filters:\t0\n")
	writeFile(t, filepath.Join(host, "/proc/sys/kernel/seccomp/actions_avail"), "kill_process kill_thread trap errno user_notif trace log allow\n")
	writeFile(t, filepath.Join(host, "/etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n")
	writeFile(t, filepath.Join(host, "/etc/subuid"), "alice:100000:65536\n")
	return host
}

// appendConfig adds TOML to w's config file.
func appendConfig(t *testing.T, w *world, toml string) {
	t.Helper()
	b, err := os.ReadFile(w.config)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, w.config, string(b)+toml)
}

func TestCheckCommand(t *testing.T) {
	ready := newWorld(t)
	readyHost(t, ready)
	notReady := newWorld(t)
	// A jail range on alice's subordinate uids, and a cgroup v1 host
	// without its pids hierarchy.
	clash := newWorld(t)
	clashHost := readyHost(t, clash)
	_ = os.Remove(filepath.Join(clashHost, "/sys/fs/cgroup/cgroup.controllers"))
	for _, c := range []string{"memory", "cpu", "cpuacct"} {
		writeFile(t, filepath.Join(clashHost, "/sys/fs/cgroup", c, "tasks"), "")
	}
	appendConfig(t, clash, "[jail]\nuid_base = 100000\nuid_count = 1000\n")
	off := newWorld(t)
	readyHost(t, off)
	appendConfig(t, off, "[jail]\nenabled = false\n[cgroups]\nenabled = false\n")
	runCases(t, ready, []cmdCase{
		{name: "ready host", args: []string{"check"}, out: []string{"WARN  virtualization", "software KVM (such as PVM)", "TCG", "OK    vsock",
			"OK    cgroup controllers             cgroup v2: memory, cpu, pids available",
			"OK    jail uid range                 uids/gids 3000000000-3000065535",
			"SKIP  jail namespaces and mount API  not tried: not the local host",
			"OK    seccomp                        kernel seccomp filters",
			"SKIP  /dev/kvm group                 KVM not used",
			"host ready: sandboxes would run on qemu"}},
		{name: "json", args: []string{"check", "--json", "--containerd-config", "/etc/cd.toml"}, checkOut: func(t *testing.T, out string) {
			var rep hostcheck.Report
			decodeJSON(t, out, &rep)
			if !rep.Ready || rep.Hypervisor != "qemu" || len(rep.Results) < 10 {
				t.Errorf("%+v", rep)
			}
			got := map[string]hostcheck.Status{}
			for _, r := range rep.Results {
				got[r.Name] = r.Status
			}
			for name, want := range map[string]hostcheck.Status{"containerd runtime": hostcheck.OK, "cgroup controllers": hostcheck.OK, "jail uid range": hostcheck.OK,
				"jail namespaces and mount API": hostcheck.Skip, "seccomp": hostcheck.OK, "/dev/kvm group": hostcheck.Skip} {
				if got[name] != want {
					t.Errorf("%s: %q, want %q", name, got[name], want)
				}
			}
		}},
	})
	runCases(t, notReady, []cmdCase{
		{name: "nothing installed", args: []string{"check"}, code: 1, out: []string{"FAIL  virtiofsd", "fix:", "host NOT ready"}, errOut: []string{"host not ready"}},
	})
	runCases(t, clash, []cmdCase{
		{name: "uid clash and no pids hierarchy", args: []string{"check"}, code: 1, out: []string{
			"WARN  jail uid range                 uids/gids 100000-100999 (jail.uid_base 100000, jail.uid_count 1000) overlap the host's: subuid range 100000-165535 (alice in /etc/subuid)",
			"fix: set jail.uid_base and jail.uid_count",
			"FAIL  cgroup controllers             cgroup v1: hierarchies needed by the sandbox cgroup are not mounted: pids",
			"cgroups.enabled = false", "host NOT ready"}},
	})
	runCases(t, off, []cmdCase{
		{name: "jail and cgroups off", args: []string{"check"}, out: []string{
			"OK    cgroup controllers             not used: cgroups.enabled = false",
			"OK    jail uid range                 not checked: jail.enabled = false",
			"WARN  jail namespaces and mount API  jail.enabled = false: the VMM and vhost-device-vsock run as root",
			"fix: set jail.enabled = true",
			"QEMU runs without -sandbox", "host ready"}},
	})
}

// TestCheckThisHost runs `veil check` on this host, as root: the jail is
// really tried (this test binary serves as its stage, see TestMain) and
// QEMU's -sandbox probed.
func TestCheckThisHost(t *testing.T) {
	integration.Require(t, integration.Root, integration.VM)
	w := newWorld(t)
	e := w.env()
	e.host = hostcheck.LocalHost()
	var out bytes.Buffer
	cmd := newRootCommandEnv(e)
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--config", integration.ConfigPath(), "check"})
	err := cmd.ExecuteContext(context.Background())
	t.Logf("veil check:\n%s", out.String())
	if err != nil {
		t.Errorf("veil check: %v", err)
	}
	for _, want := range []string{"OK    jail namespaces and mount API  ran /usr/bin/true as uid/gid 3000065535", "OK    cgroup controllers", "OK    seccomp", "starts with -sandbox"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestConfigCommands(t *testing.T) {
	w := newWorld(t)
	bad := filepath.Join(w.root, "bad.toml")
	writeFile(t, bad, "state_dir = \"/x\"\n\n[guest]\nvcpu = 2\n")
	invalid := filepath.Join(w.root, "invalid.toml")
	writeFile(t, invalid, "[guest]\nmemory_mib = 10\n")
	runCases(t, w, []cmdCase{
		{name: "show annotates sources", args: []string{"config", "show"}, out: []string{
			"state_dir = '" + w.stateDir + "'  # " + w.config, "log_level = 'info'  # default", "[guest]", "kernel = '/k/vmlinux'  # " + w.config, "vcpus = 1  # default"}},
		{name: "show json", args: []string{"config", "show", "--json"}, checkOut: func(t *testing.T, out string) {
			var cs configShow
			decodeJSON(t, out, &cs)
			if cs.Path != w.config || len(cs.Keys) < 10 {
				t.Errorf("%+v", cs)
			}
		}},
		{name: "validate valid", args: []string{"config", "validate", w.config}, out: []string{w.config + ": valid"}},
		{name: "validate unknown key", args: []string{"config", "validate", bad}, code: 1, errOut: []string{`line 4: unknown key "guest.vcpu"`}},
		{name: "validate bad value", args: []string{"config", "validate", invalid}, code: 1, errOut: []string{"guest.memory_mib"}},
		{name: "validate missing file", args: []string{"config", "validate", filepath.Join(w.root, "none.toml")}, code: 1, errOut: []string{"no such file"}},
	})
}

func TestSandboxCommands(t *testing.T) {
	w := newWorld(t)
	w.sandbox(t, "pod-a", 100, true, "c1", "c2")
	w.sandbox(t, "pod-b", 200, false)
	runCases(t, w, []cmdCase{
		{name: "ls table", args: []string{"sandbox", "ls"}, checkOut: func(t *testing.T, out string) {
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") {
				t.Fatalf("table:\n%s", out)
			}
			for i, want := range [][]string{{"pod-a", "qemu", "100", "running", "c1,c2"}, {"pod-b", "qemu", "200", "dead", "-"}} {
				f := strings.Fields(lines[i+1])
				if len(f) != 6 || f[0] != want[0] || f[1] != want[1] || f[2] != want[2] || f[3] != want[3] || f[5] != want[4] {
					t.Errorf("row %q, want %v", lines[i+1], want)
				}
			}
		}},
		{name: "ls quiet", args: []string{"sandbox", "ls", "-q"}, checkOut: func(t *testing.T, out string) {
			if out != "pod-a\npod-b\n" {
				t.Errorf("%q", out)
			}
		}},
		{name: "ls json", args: []string{"sandbox", "ls", "--json"}, checkOut: func(t *testing.T, out string) {
			var sbs []inspect.SandboxInfo
			decodeJSON(t, out, &sbs)
			if len(sbs) != 2 || sbs[0].State != "running" || len(sbs[0].Containers) != 2 {
				t.Errorf("%+v", sbs)
			}
		}},
		{name: "inspect", args: []string{"sandbox", "inspect", "pod-a"}, checkOut: func(t *testing.T, out string) {
			var sb inspect.SandboxInfo
			decodeJSON(t, out, &sb)
			alive := 0
			for _, h := range sb.Helpers {
				if h.Alive {
					alive++
				}
			}
			if sb.Kernel != "/k/vmlinux" || sb.Initrd != "/k/initrd" || alive != 2 || len(sb.Sockets) != 2 || !strings.HasSuffix(sb.ConsoleLog, "pod-a/console.log") {
				t.Errorf("%+v", sb)
			}
		}},
		{name: "inspect unknown", args: []string{"sandbox", "inspect", "nope"}, code: 1, errOut: []string{"sandbox not found"}},
		{name: "console", args: []string{"sandbox", "console", "pod-b"}, out: []string{"Linux version 6.1\nagent serving\n"}},
		{name: "metrics", args: []string{"sandbox", "metrics", "pod-a"}, out: []string{"qemu", "4.0MiB", "1s", "128.0MiB available of 256.0MiB", "c1", "not available: qemu reports no device counters"}},
		{name: "metrics json", args: []string{"sandbox", "metrics", "pod-a", "--json"}, checkOut: func(t *testing.T, out string) {
			var m inspect.Metrics
			decodeJSON(t, out, &m)
			if len(m.Host) != 2 || m.Host[0].Usage == nil || m.Guest == nil || m.Guest.Containers[0].PidsCurrent != 3 {
				t.Errorf("%+v", m)
			}
		}},
		{name: "metrics of a dead sandbox", args: []string{"sandbox", "metrics", "pod-b"}, out: []string{"not running", "unavailable: VMM is dead"}},
		{name: "exec", args: []string{"sandbox", "exec", "pod-a", "--", "uname", "-r"}, out: []string{"uname -r|\n"}},
		{name: "exec with stdin", args: []string{"sandbox", "exec", "-i", "pod-a", "--", "cat"}, out: []string{"cat|stdin-data"}},
		{name: "exec exit status", args: []string{"sandbox", "exec", "pod-a", "--", "false"}, code: 1, errOut: []string{"failed"}},
		{name: "exec in a dead sandbox", args: []string{"sandbox", "exec", "pod-b", "--", "true"}, code: 1, errOut: []string{"connect to the agent"}},
		{name: "exec without command", args: []string{"sandbox", "exec", "pod-a"}, code: 1},
		{name: "vm info", args: []string{"vm", "info", "pod-a"}, out: []string{"pod-a", "qemu", "running", `"status": "running"`}},
		{name: "vm info json", args: []string{"vm", "info", "pod-a", "--json"}, out: []string{`"State": "running"`}},
		{name: "vm info dead", args: []string{"vm", "info", "pod-b"}, code: 1, errOut: []string{"VMM is dead"}},
	})
	// Cleanup last: it removes pod-b.
	runCases(t, w, []cmdCase{
		{name: "cleanup of a running sandbox is refused", args: []string{"sandbox", "cleanup", "pod-a"}, code: 1, errOut: []string{"sandbox pod-a is running (qemu pid 100)", "--force"}},
		{name: "cleanup of a hostile id", args: []string{"sandbox", "cleanup", "../x"}, code: 1, errOut: []string{"invalid sandbox id"}},
		{name: "cleanup of a dead sandbox", args: []string{"sandbox", "cleanup", "pod-b"}, out: []string{"sandbox pod-b removed"}},
		{name: "cleanup again", args: []string{"sandbox", "cleanup", "pod-b"}, code: 1, errOut: []string{"not found"}},
	})
}

func TestEmptyStateDir(t *testing.T) {
	w := newWorld(t)
	runCases(t, w, []cmdCase{
		{name: "ls header only", args: []string{"sandbox", "ls"}, checkOut: func(t *testing.T, out string) {
			if strings.Count(out, "\n") != 1 {
				t.Errorf("%q", out)
			}
		}},
		{name: "ls json empty list", args: []string{"sandbox", "ls", "--json"}, out: []string{"[]"}},
	})
}

func TestCompletion(t *testing.T) {
	w := newWorld(t)
	runCases(t, w, []cmdCase{
		{name: "bash", args: []string{"completion", "bash"}, out: []string{"bash completion"}},
		{name: "zsh", args: []string{"completion", "zsh"}, out: []string{"zsh completion"}},
	})
}
