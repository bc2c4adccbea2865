package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/veil-runtime/veil/runtime/hostcheck"
	"github.com/veil-runtime/veil/runtime/inspect"
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

func TestCheckCommand(t *testing.T) {
	ready := newWorld(t)
	host := filepath.Join(ready.root, "host")
	for _, p := range []string{"/bin/qemu-system-x86_64", "/bin/vhost-device-vsock", "/bin/virtiofsd", "/k/vmlinux", "/k/initrd", "/dev/kvm", "/proc/cpuinfo"} {
		writeFile(t, filepath.Join(host, p), "")
	}
	writeFile(t, filepath.Join(host, "/etc/cd.toml"), `runtime_type = "io.containerd.veil.v2"`)
	notReady := newWorld(t)
	runCases(t, ready, []cmdCase{
		{name: "ready host", args: []string{"check"}, out: []string{"WARN  virtualization", "software KVM (such as PVM)", "TCG", "OK    vsock", "host ready: sandboxes would run on qemu"}},
		{name: "json", args: []string{"check", "--json", "--containerd-config", "/etc/cd.toml"}, checkOut: func(t *testing.T, out string) {
			var rep hostcheck.Report
			decodeJSON(t, out, &rep)
			if !rep.Ready || rep.Hypervisor != "qemu" || len(rep.Results) < 10 {
				t.Errorf("%+v", rep)
			}
			for _, r := range rep.Results {
				if r.Name == "containerd runtime" && r.Status != hostcheck.OK {
					t.Errorf("containerd: %+v", r)
				}
			}
		}},
	})
	runCases(t, notReady, []cmdCase{
		{name: "nothing installed", args: []string{"check"}, code: 1, out: []string{"FAIL  virtiofsd", "fix:", "host NOT ready"}, errOut: []string{"host not ready"}},
	})
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
			var sbs []inspect.Sandbox
			decodeJSON(t, out, &sbs)
			if len(sbs) != 2 || sbs[0].State != "running" || len(sbs[0].Containers) != 2 {
				t.Errorf("%+v", sbs)
			}
		}},
		{name: "inspect", args: []string{"sandbox", "inspect", "pod-a"}, checkOut: func(t *testing.T, out string) {
			var sb inspect.Sandbox
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
