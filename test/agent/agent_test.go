package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/sandbox"
	"github.com/veil-runtime/veil/runtime/statedir"
	"github.com/veil-runtime/veil/test/harness"
)

const (
	// bootTimeout bounds sandbox.Start beyond the config's own timeouts.
	bootTimeout = 90 * time.Second
	// runTimeout bounds one container run.
	runTimeout = 60 * time.Second
)

// TestAgent boots one sandbox VM and runs containers in it through the
// agent API, then checks that Stop leaves nothing behind.
func TestAgent(t *testing.T) {
	cfg := harness.SandboxConfig(t)
	rootfs := busyboxRootfs(t)

	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	s, err := sandbox.Start(ctx, "agent-test", cfg, sandbox.Options{Hostname: "veil-test"})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = s.Stop(context.Background())
		}
	})

	h, err := s.Agent().Health(ctx, &api.HealthRequest{})
	if err != nil {
		t.Fatalf("Health: %v", err)
	}
	t.Logf("agent %s, API %d, guest kernel %s", h.AgentVersion, h.ApiVersion, h.KernelRelease)

	cases := []struct {
		name       string
		args       []string
		wantOut    string
		wantStatus uint32
	}{
		{name: "hello", args: []string{"/bin/sh", "-c", "echo hello"}, wantOut: "hello\n", wantStatus: 0},
		{name: "exit status", args: []string{"/bin/sh", "-c", "exit 7"}, wantOut: "", wantStatus: 7},
		{name: "own hostname", args: []string{"/bin/hostname"}, wantOut: "veil-test\n", wantStatus: 0},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, status := runContainer(t, s, fmt.Sprintf("c%d", i), rootfs, tc.args...)
			if out != tc.wantOut {
				t.Errorf("stdout = %q, want %q", out, tc.wantOut)
			}
			if status != tc.wantStatus {
				t.Errorf("exit status = %d, want %d", status, tc.wantStatus)
			}
		})
	}

	pids := s.Pids()
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	stopped = true
	if err := s.Stop(sctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case <-s.Done():
	default:
		t.Error("Done not closed after Stop")
	}
	if err := s.Stop(sctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	assertNothingLeft(t, s.Dir(), pids)
}

// TestVMKilled checks that the VMM runs in the given network namespace,
// that a sandbox whose VMM is SIGKILLed reports it on Done, and that Stop
// still cleans up.
func TestVMKilled(t *testing.T) {
	cfg := harness.SandboxConfig(t)
	netns := newNetNS(t)
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	s, err := sandbox.Start(ctx, "kill-test", cfg, sandbox.Options{Hostname: "kill-test", NetNSPath: netns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })

	pids := s.Pids()
	// The jailed QEMU gets its taps as file descriptors: it runs in an
	// empty network namespace of its own, neither the host's nor the
	// pod's.
	got := nsInode(t, fmt.Sprintf("/proc/%d/ns/net", pids[cfg.Hypervisor.Name]))
	if got == nsInode(t, netns) || got == nsInode(t, "/proc/self/ns/net") {
		t.Errorf("VMM runs in netns inode %d: the pod's (%s) or the host's", got, netns)
	}
	if err := syscall.Kill(pids[cfg.Hypervisor.Name], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed 10s after SIGKILL of the VMM")
	}
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	if err := s.Stop(sctx); err != nil {
		t.Fatalf("Stop after VMM death: %v", err)
	}
	assertNothingLeft(t, s.Dir(), pids)
}

// runContainer runs args in a fresh container and returns its stdout and
// exit status. The rootfs goes into the share now, long after virtiofsd
// started: the guest sees it only if the share's mounts reach
// virtiofsd's mount namespace.
func runContainer(t *testing.T, s *sandbox.Sandbox, id, rootfs string, args ...string) (string, uint32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()

	if _, err := s.Share().AddContainer(ctx, id, statedir.ContainerFS{BundleRootfs: rootfs}); err != nil {
		t.Fatalf("add rootfs to the share: %v", err)
	}
	t.Cleanup(func() { _ = s.Share().RemoveContainer(context.Background(), id) })
	guestRootfs := statedir.GuestRootfs(id)

	spec, err := json.Marshal(defaultSpec(guestRootfs, "veil-test", args...))
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := s.DialStream(ctx, api.StreamHeader{ContainerID: id, Stream: api.StreamStdout})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stdout.Close() }()
	outc := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(stdout)
		outc <- string(b)
	}()

	agent := s.Agent()
	if _, err := agent.CreateContainer(ctx, &api.CreateContainerRequest{
		ContainerId: id,
		Spec:        spec,
		Rootfs:      guestRootfs,
		Stdio:       &api.Stdio{Stdout: true},
	}); err != nil {
		t.Fatalf("CreateContainer: %v\nconsole:\n%s", err, consoleTail(s))
	}
	if _, err := agent.StartContainer(ctx, &api.ContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	w, err := agent.WaitProcess(ctx, &api.ProcessRequest{ContainerId: id})
	if err != nil {
		t.Fatalf("WaitProcess: %v", err)
	}
	var out string
	select {
	case out = <-outc:
	case <-ctx.Done():
		t.Fatal("stdout not closed after WaitProcess answered")
	}
	if _, err := agent.RemoveContainer(ctx, &api.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Errorf("RemoveContainer: %v", err)
	}
	if err := s.Share().RemoveContainer(ctx, id); err != nil {
		t.Errorf("remove rootfs from the share: %v", err)
	}
	return out, w.ExitStatus
}

// assertNothingLeft checks that no helper process, mount or file of the
// sandbox remains.
func assertNothingLeft(t *testing.T, dir string, pids map[string]int) {
	t.Helper()
	for name, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if strings.Contains(string(cmdline), dir) {
				t.Errorf("%s (pid %d) still runs", name, pid)
			}
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("state dir %s left: %v", dir, err)
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mi), "\n") {
		if strings.Contains(line, dir) {
			t.Errorf("mount left: %s", line)
		}
	}
}

func consoleTail(s *sandbox.Sandbox) string {
	b, _ := os.ReadFile(filepath.Join(s.Dir(), "console.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// newNetNS creates a named network namespace for the test and returns its
// path.
func newNetNS(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("veil-test-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", name).Run() })
	return "/run/netns/" + name
}

func nsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestCleanupAfterCrash plays a shim that crashed with a running sandbox:
// Cleanup, working only from the state dir's pid files, must leave
// nothing behind.
func TestCleanupAfterCrash(t *testing.T) {
	cfg := harness.SandboxConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	s, err := sandbox.Start(ctx, "crash-test", cfg, sandbox.Options{Hostname: "crash-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	pids := s.Pids()
	for name, pid := range pids {
		t.Logf("%s pid %d, %s", name, pid, rss(pid))
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer ccancel()
	if err := sandbox.Cleanup(cctx, cfg, s.ID()); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	select {
	case <-s.Done():
	case <-cctx.Done():
		t.Fatal("VM still runs after Cleanup")
	}
	assertNothingLeft(t, s.Dir(), pids)
	if err := sandbox.Cleanup(cctx, cfg, s.ID()); err != nil {
		t.Fatalf("second Cleanup: %v", err)
	}
}

// rss reports a process's resident memory, for the log.
func rss(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return err.Error()
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			return strings.Join(strings.Fields(l), " ")
		}
	}
	return "VmRSS unknown"
}
