package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// podSpec is a CRI-like sandbox container spec: a network namespace
// joined by path (the guest's, after the rewrite), new ipc, uts, pid and
// mount namespaces, a hostname, IPC sysctls and an OOM score.
func podSpec(t *testing.T, cgroup string, sysctl map[string]string) []byte {
	s := specconv.Example()
	s.Process.Args = []string{"/pause"}
	s.Hostname = "pod-host"
	oom := 321 // raising needs no CAP_SYS_RESOURCE, which test machines may lack
	s.Process.OOMScoreAdj = &oom
	s.Linux.Sysctl = sysctl
	s.Linux.CgroupsPath = cgroup
	s.Linux.Namespaces = []specs.LinuxNamespace{
		{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
		{Type: specs.MountNamespace}, {Type: specs.NetworkNamespace, Path: "/var/run/netns/cni-test"},
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// appSpec is a CRI-like app container of the pod: it names the pod's
// ipc, uts and pid namespaces by (host) path, adding caps.
func appSpec(t *testing.T, caps []string, args ...string) []byte {
	s := specconv.Example()
	s.Process.Args = args
	s.Process.Env = []string{"PATH=/bin"}
	s.Hostname = "" // the pod's, from the joined uts namespace
	s.Process.Capabilities.Bounding = append(s.Process.Capabilities.Bounding, caps...)
	s.Process.Capabilities.Effective = append(s.Process.Capabilities.Effective, caps...)
	s.Process.Capabilities.Permitted = append(s.Process.Capabilities.Permitted, caps...)
	s.Linux.Namespaces = []specs.LinuxNamespace{
		{Type: specs.PIDNamespace, Path: "/proc/99/ns/pid"}, {Type: specs.IPCNamespace, Path: "/proc/99/ns/ipc"},
		{Type: specs.UTSNamespace, Path: "/proc/99/ns/uts"}, {Type: specs.MountNamespace},
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// procStatus reads the fields of /proc/<pid>/status.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

func (f *fixture) startHolder(id string, specJSON []byte) (int, error) {
	f.t.Helper()
	if err := f.m.Create(f.ctx, id, specJSON, CreateOptions{Rootfs: f.rootfs(id), PodHolder: true}); err != nil {
		return 0, err
	}
	return f.m.Start(f.ctx, id)
}

// TestIntegrationPodHolder runs a pod's sandbox container as a pod holder
// and a container of the pod beside it, and attacks the holder from it.
func TestIntegrationPodHolder(t *testing.T) {
	f := newFixture(t)
	cgroup := "/veil-test/holder-" + filepath.Base(t.TempDir())
	pid, err := f.startHolder("pod", podSpec(t, cgroup, map[string]string{"kernel.shm_rmid_forced": "1", "kernel.msgmax": "12345"}))
	if err != nil {
		t.Fatalf("start holder: %v", err)
	}

	t.Run("confined", func(t *testing.T) {
		st := procStatus(t, pid)
		for k, want := range map[string]string{"Uid": "65535\t65535\t65535\t65535", "Gid": "65535\t65535\t65535\t65535", "CapEff": "0000000000000000", "CapPrm": "0000000000000000", "Seccomp": "2", "NSpid": fmt.Sprintf("%d\t1", pid)} {
			if st[k] != want {
				t.Errorf("%s: %q, want %q", k, st[k], want)
			}
		}
		var fi syscall.Stat_t
		if err := syscall.Stat(fmt.Sprintf("/proc/%d/status", pid), &fi); err != nil || fi.Uid != 0 {
			t.Errorf("/proc/%d owned by uid %d (%v): the holder is dumpable", pid, fi.Uid, err)
		}
		if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/root", pid)); err != nil || len(ents) != 0 {
			t.Errorf("holder's root: %v, %v; want empty", ents, err)
		}
		for _, ns := range []string{"ipc", "uts", "pid", "mnt"} {
			mine, _ := os.Readlink("/proc/self/ns/" + ns)
			its, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
			if err != nil || its == mine {
				t.Errorf("%s namespace %q (%v) is the agent's", ns, its, err)
			}
		}
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid)); strings.TrimSpace(string(b)) != "321" {
			t.Errorf("oom_score_adj %q", b)
		}
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); string(b) != holderName+"\x00" {
			t.Errorf("cmdline %q", b)
		}
		pids, err := f.m.Pids(f.ctx, "pod")
		if err != nil || len(pids) != 1 || pids[0] != pid {
			t.Errorf("pids %v (%v), want [%d]", pids, err, pid)
		}
	})

	t.Run("container of the pod", func(t *testing.T) {
		cases := []struct {
			name string
			caps []string
			cmd  string
			want string
		}{
			{name: "hostname", cmd: "hostname", want: "pod-host\n"},
			{name: "ipc sysctls", cmd: "cat /proc/sys/kernel/shm_rmid_forced /proc/sys/kernel/msgmax", want: "1\n12345\n"},
			{name: "holder is pid 1", cmd: "tr '\\0' ' ' < /proc/1/cmdline", want: holderName + " "},
			{name: "holder's root refused", cmd: "ls -A /proc/1/root/ 2>&1 >/dev/null | grep -c 'Permission denied'", want: "1\n"},
			{name: "holder's root empty with CAP_SYS_PTRACE", caps: []string{"CAP_SYS_PTRACE"}, cmd: "ls -A /proc/1/root/ | wc -l", want: "0\n"},
			{name: "holder not traceable without CAP_SYS_PTRACE", cmd: "cat /proc/1/environ 2>&1 | grep -c 'Permission denied'", want: "1\n"},
		}
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				id := fmt.Sprintf("app%d", i)
				h := f.connect(id, "", Stdio{Stdout: true})
				out := readAll(h.stdout)
				err := f.m.Create(f.ctx, id, appSpec(t, c.caps, "sh", "-c", c.cmd), CreateOptions{Rootfs: f.rootfs(id), Stdio: Stdio{Stdout: true}, PodContainerID: "pod"})
				if err != nil {
					t.Fatalf("create: %v", err)
				}
				if _, err := f.m.Start(f.ctx, id); err != nil {
					t.Fatalf("start: %v", err)
				}
				f.wait(id, "")
				if got := <-out; got != c.want {
					t.Errorf("%q: %q, want %q", c.cmd, got, c.want)
				}
				if err := f.m.Remove(f.ctx, id, false); err != nil {
					t.Errorf("remove: %v", err)
				}
			})
		}
	})

	t.Run("refused", func(t *testing.T) {
		if _, err := f.m.Exec(f.ctx, "pod", "x", execProc(t, "/bin/true"), Stdio{}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Errorf("exec: %v, want FailedPrecondition", err)
		}
		err := f.m.Create(f.ctx, "tty", podSpec(t, cgroup+"-tty", nil), CreateOptions{Rootfs: f.rootfs("tty"), PodHolder: true, Stdio: Stdio{Terminal: true}})
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("terminal: %v, want InvalidArgument", err)
		}
	})

	t.Run("pause", func(t *testing.T) {
		if err := f.m.Pause(f.ctx, "pod"); err != nil {
			t.Fatal(err)
		}
		if st := procStatus(t, pid)["State"]; !strings.HasPrefix(st, "S") && !strings.HasPrefix(st, "D") {
			t.Errorf("state %q while frozen", st)
		}
		if err := f.m.Resume(f.ctx, "pod"); err != nil {
			t.Fatal(err)
		}
		if err := f.m.Resume(f.ctx, "pod"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Errorf("resume of a running holder: %v", err)
		}
	})

	t.Run("SIGTERM ends it with 0", func(t *testing.T) {
		// Other signals are dropped, as pause (PID 1, no handler) drops
		// them: the holder is still there to be Paused.
		for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGQUIT, syscall.SIGPIPE} {
			if err := f.m.Signal(f.ctx, "pod", "", sig, false); err != nil {
				t.Fatalf("%v: %v", sig, err)
			}
		}
		if err := f.m.Pause(f.ctx, "pod"); err != nil {
			t.Fatalf("pause after other signals: %v", err)
		}
		if err := f.m.Resume(f.ctx, "pod"); err != nil {
			t.Fatal(err)
		}
		if err := f.m.Signal(f.ctx, "pod", "", syscall.SIGTERM, false); err != nil {
			t.Fatal(err)
		}
		if st := f.wait("pod", ""); st != 0 {
			t.Errorf("status %d, want 0", st)
		}
		if err := f.m.Signal(f.ctx, "pod", "", syscall.SIGTERM, false); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("signal after exit: %v, want NotFound", err)
		}
		if err := f.m.Remove(f.ctx, "pod", false); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/pids", cgroup)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup left: %v", err)
		}
	})

	t.Run("SIGKILL", func(t *testing.T) {
		if _, err := f.startHolder("pod2", podSpec(t, cgroup+"-2", nil)); err != nil {
			t.Fatal(err)
		}
		if err := f.m.Signal(f.ctx, "pod2", "", syscall.SIGKILL, false); err != nil {
			t.Fatal(err)
		}
		if st := f.wait("pod2", ""); st != 137 {
			t.Errorf("status %d, want 137", st)
		}
	})

	t.Run("setup fails", func(t *testing.T) {
		_, err := f.startHolder("pod3", podSpec(t, cgroup+"-3", map[string]string{"kernel.msgmax": "not-a-number"}))
		if err == nil || !strings.Contains(err.Error(), "sysctl kernel.msgmax") {
			t.Fatalf("start: %v, want the sysctl's failure", err)
		}
		if pids, err := f.m.Pids(f.ctx, "pod3"); err != nil || len(pids) != 0 {
			t.Errorf("pids after a failed start: %v (%v)", pids, err)
		}
		if err := f.m.Remove(f.ctx, "pod3", false); err != nil {
			t.Errorf("remove: %v", err)
		}
	})
}

// TestIntegrationWarmUp runs the warm-up and checks that it left nothing:
// its directory, its cgroups and its processes are gone.
func TestIntegrationWarmUp(t *testing.T) {
	needHost(t)
	dir := filepath.Join(t.TempDir(), "warmup")
	if err := WarmUp(context.Background(), dir, busybox); err != nil {
		t.Fatalf("warm up: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("warm-up directory left: %v", err)
	}
	for _, root := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpu"} {
		if _, err := os.Stat(filepath.Join(root, warmUpCgroup)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("warm-up cgroup left in %s: %v", root, err)
		}
	}
	out, err := exec.Command("pgrep", "-f", holderName).CombinedOutput()
	if err == nil {
		t.Errorf("holder processes left: %s", out)
	}
	if err := WarmUp(context.Background(), dir, "/nonexistent/busybox"); err == nil || !strings.Contains(err.Error(), "warm-up rootfs") {
		t.Errorf("warm-up without busybox: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed warm-up left its directory: %v", err)
	}
}

const filterProbeEnv = "VEIL_TEST_HOLDER_FILTER"

// filterProbe loads the holder's filter in this (re-executed test)
// process and tries what a tracer would make the holder do; it prints
// one line per attempt.
func filterProbe() int {
	if err := loadHolderFilter(); err != nil {
		fmt.Println("load:", err)
		return 1
	}
	try := func(name string, err error) { fmt.Printf("%s: %v\n", name, err) }
	_, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM, 0)
	try("vsock", err)
	_, err = unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	try("unix", err)
	try("exec", unix.Exec("/bin/true", []string{"true"}, nil))
	try("unshare", unix.Unshare(unix.CLONE_NEWNS))
	_, err = unix.Getcwd(make([]byte, 256))
	try("getcwd", err)
	return 0
}

// TestHolderFilter attacks the holder's seccomp filter: a process under
// it cannot open a vsock (or any) socket, exec or unshare; ordinary
// calls work.
func TestHolderFilter(t *testing.T) {
	needHost(t)
	cmd := exec.Command("/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), filterProbeEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("probe: %v\n%s", err, out)
	}
	want := "vsock: operation not permitted\nunix: operation not permitted\nexec: operation not permitted\nunshare: operation not permitted\ngetcwd: <nil>\n"
	if string(out) != want {
		t.Fatalf("under the holder's filter:\n%s\nwant:\n%s", out, want)
	}
}
