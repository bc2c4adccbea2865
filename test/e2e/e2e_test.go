package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/pelletier/go-toml/v2"
	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/test/harness"
	"github.com/veil-runtime/veil/test/image"
	"github.com/veil-runtime/veil/test/integration"
)

// env is one containerd with the busybox image, shared by the cases.
type env struct {
	c        *harness.Containerd
	stateDir string
	cache    string
	// cfgPath is the Veil config the shim uses ($VEIL_CONFIG).
	cfgPath string
	// pool, when set, is the warm pool every case must start from.
	pool *harness.Pool
}

// setup starts containerd for the hypervisor, with the Veil config of
// make setup changed by opts.
func setup(t *testing.T, hypervisor string, opts ...func(*config.Config)) *env {
	t.Helper()
	integration.Require(t, integration.Root, integration.VM)
	cache := harness.CacheDir()
	cfg, err := config.Load(harness.ConfigPath())
	if err != nil {
		t.Fatalf("veil config (made by make setup): %v", err)
	}
	cfg.Hypervisor.Name = config.HypervisorAuto
	if name, reason := cfg.Hypervisor.Resolve(); hypervisor == config.HypervisorCloudHypervisor && name != hypervisor {
		t.Skipf("cloud-hypervisor cannot run here (%s); the suite runs on qemu", reason)
	}
	cfg.Hypervisor.Name = hypervisor
	for _, o := range opts {
		o(cfg)
	}
	cfgPath := writeConfig(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := harness.Start(ctx, harness.Options{Env: []string{config.EnvPath + "=" + cfgPath}})
	if err != nil {
		t.Fatalf("start containerd: %v", err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Stop(sctx); err != nil {
			t.Errorf("stop containerd: %v", err)
		}
	})
	tar, err := image.BuildBusybox(t.TempDir(), imageRef)
	if err != nil {
		t.Fatalf("build busybox image: %v", err)
	}
	mustCtr(t, c, "images", "import", tar)
	return &env{c: c, stateDir: cfg.StateDir, cache: cache, cfgPath: cfgPath}
}

// writeConfig writes cfg where the shim finds it through $VEIL_CONFIG.
func writeConfig(t *testing.T, cfg *config.Config) string {
	t.Helper()
	b, err := toml.Marshal(cfg)
	if err != nil {
		t.Fatalf("encode veil config: %v", err)
	}
	p := filepath.Join(t.TempDir(), "veil-config.toml")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCtr runs the user-visible cases once per hypervisor, one case after
// the other (each boots one VM; at most one runs at a time), checking
// after each that its sandbox left nothing behind. The Cloud Hypervisor
// run skips, saying why, where CH or hardware virtualization is missing.
func TestCtr(t *testing.T) {
	for _, hv := range []string{config.HypervisorQEMU, config.HypervisorCloudHypervisor} {
		t.Run(hv, func(t *testing.T) { testCtr(t, setup(t, hv)) })
	}
}

func testCtr(t *testing.T, e *env) {
	cases := []struct {
		name string
		id   string
		run  func(t *testing.T, e *env, id string)
	}{
		{"echo", "e2e-echo", testEcho},
		{"guest kernel", "e2e-uname", testGuestKernel},
		{"exit code", "e2e-exit", testExitCode},
		{"stdin round trip", "e2e-stdin", testStdinRoundTrip},
		{"kill detached", "e2e-kill", testKillDetached},
		{"terminal", "e2e-tty", testTerminal},
		{"exec", "e2e-exec", testExec},
		{"command not found", "e2e-nocmd", testCommandNotFound},
		{"vm killed", "e2e-vmkill", testVMKilled},
		{"pod shares one sandbox", "e2e-pod", testPod},
		{"shim killed", "e2e-shimkill", testShimKilled},
		{"metrics", "e2e-metrics", testMetrics},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Cleanup(func() { forceRemove(t, e, tc.id) })
			claims := e.waitPoolFull(t)
			tc.run(t, e, tc.id)
			// After a case its sandbox must be gone entirely.
			checkNoLeftovers(t, e.stateDir, tc.id)
			e.checkClaimed(t, claims)
		})
	}
}

// TestCtrWarm runs TestCtr's cases on QEMU with the warm pool on: every
// case's sandbox must be claimed from the pool (a silent cold start
// fails the case), and after each only the pool's own ready VMs are left
// in it.
func TestCtrWarm(t *testing.T) {
	testCtr(t, setupWarm(t, 2, 0))
}

// setupWarm is setup on QEMU with a warm pool of size VMs with nics NICs,
// whose daemon runs from after containerd's leak census to before its
// last one.
func setupWarm(t *testing.T, size, nics int) *env {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "pool.sock")
	e := setup(t, config.HypervisorQEMU, func(c *config.Config) {
		c.Pool.Size, c.Pool.NICs, c.Pool.Socket = size, nics, sock
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := harness.StartPool(ctx, e.cfgPath, filepath.Join(t.TempDir(), "pool.log"))
	if err != nil {
		t.Fatal(err)
	}
	// Registered after containerd's stop, so it runs first; a test may
	// have replaced the daemon (e.pool).
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p := e.pool
		if err := p.Stop(sctx); err != nil {
			t.Errorf("stop the pool: %v", err)
		}
		if left := harness.PoolDirs(e.stateDir); len(left) > 0 {
			t.Errorf("pool VMs left after the daemon stopped: %q", left)
		}
		if t.Failed() {
			b, _ := os.ReadFile(p.LogPath)
			t.Logf("pool daemon log %s:\n%s", p.LogPath, b)
		}
	})
	e.pool = p
	return e
}

// warmStarts counts the claims the pool served and the sandboxes the
// shims started warm so far.
type warmStarts struct{ claims, adopted int }

func (e *env) warmStarts() warmStarts {
	b, _ := os.ReadFile(e.c.LogPath)
	return warmStarts{e.pool.Claims(), strings.Count(string(b), `msg="sandbox started warm"`)}
}

// waitPoolFull waits until the warm pool (if any) is full and returns
// the warm starts so far.
func (e *env) waitPoolFull(t *testing.T) warmStarts {
	t.Helper()
	if e.pool == nil {
		return warmStarts{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := e.pool.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.pool.Wait(ctx, st.Size); err != nil {
		t.Fatal(err)
	}
	return e.warmStarts()
}

// checkClaimed fails t unless the pool served a claim and a shim
// started a sandbox warm since before, and unless the pool holds no VM
// directory beyond its ready VMs'.
func (e *env) checkClaimed(t *testing.T, before warmStarts) {
	t.Helper()
	if e.pool == nil {
		return
	}
	if got := e.warmStarts(); got.claims <= before.claims || got.adopted <= before.adopted {
		t.Errorf("the case's sandbox started cold: claims %d → %d, warm starts %d → %d", before.claims, got.claims, before.adopted, got.adopted)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := e.pool.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.pool.Wait(ctx, st.Size); err != nil {
		t.Fatal(err)
	}
	if st, err = e.pool.Status(ctx); err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, v := range st.VMs {
		known[v.Dir] = true
	}
	for _, d := range harness.PoolDirs(e.stateDir) {
		if !known[d] {
			t.Errorf("pool directory %s left by the case", d)
		}
	}
}

// forceRemove removes a case's task and container if the case failed
// half-way, so later cases start clean.
func forceRemove(t *testing.T, e *env, id string) {
	if !t.Failed() {
		return
	}
	ctr(t, e.c, nil, "task", "kill", "-s", "SIGKILL", id)
	ctr(t, e.c, nil, "task", "delete", "-f", id)
	ctr(t, e.c, nil, "containers", "delete", id)
}

func testEcho(t *testing.T, e *env, id string) {
	r := mustCtr(t, e.c, runArgs([]string{"--rm"}, id, "echo", "hello")...)
	if strings.TrimSpace(r.stdout) != "hello" {
		t.Fatalf("stdout %q, want hello\n%s", r.stdout, r)
	}
}

func testGuestKernel(t *testing.T, e *env, id string) {
	want, err := os.ReadFile(filepath.Join(e.cache, "kernel-veil", "release"))
	if err != nil {
		t.Fatalf("guest kernel release: %v", err)
	}
	var host unix.Utsname
	if err := unix.Uname(&host); err != nil {
		t.Fatal(err)
	}
	r := mustCtr(t, e.c, runArgs([]string{"--rm"}, id, "uname", "-r")...)
	got := strings.TrimSpace(r.stdout)
	if got != strings.TrimSpace(string(want)) {
		t.Fatalf("uname -r = %q, want the guest kernel %q", got, strings.TrimSpace(string(want)))
	}
	if got == unix.ByteSliceToString(host.Release[:]) {
		t.Fatalf("uname -r = %q is the host's kernel", got)
	}
}

func testExitCode(t *testing.T, e *env, id string) {
	r := ctr(t, e.c, nil, runArgs([]string{"--rm"}, id, "sh", "-c", "exit 7")...)
	if r.code != 7 {
		t.Fatalf("exit code %d, want 7\n%s", r.code, r)
	}
}

func testStdinRoundTrip(t *testing.T, e *env, id string) {
	in := make([]byte, 1<<20)
	if _, err := rand.Read(in); err != nil {
		t.Fatal(err)
	}
	r := ctr(t, e.c, bytes.NewReader(in), runArgs([]string{"--rm"}, id, "cat")...)
	if r.code != 0 {
		t.Fatalf("cat: %s", r.stderr)
	}
	if !bytes.Equal([]byte(r.stdout), in) {
		t.Fatalf("cat returned %d bytes, not the %d sent (first difference at %d)", len(r.stdout), len(in), firstDiff([]byte(r.stdout), in))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// testKillDetached: SIGTERM through `ctr task kill` ends a detached
// container with status 143. The container's PID 1 must handle SIGTERM
// (the kernel drops unhandled signals to a PID namespace's init), so the
// shell traps it the way a real service does.
func testKillDetached(t *testing.T, e *env, id string) {
	mustCtr(t, e.c, runArgs([]string{"-d"}, id, "sh", "-c", `trap "exit 143" TERM; touch /tmp/trapped; sleep 1000 & wait`)...)
	waitRunning(t, e, id)
	// A SIGTERM that arrives before the trap is set is dropped.
	waitFile(t, e, id, "/tmp/trapped")
	mustCtr(t, e.c, "task", "kill", id) // SIGTERM
	// `ctr task attach` waits for the task and exits with its status.
	r := ctr(t, e.c, nil, "task", "attach", id)
	if r.code != 143 {
		t.Fatalf("task exit %d, want 143\n%s", r.code, r)
	}
	deleteContainer(t, e, id)
}

// waitRunning waits until ctr lists the task as RUNNING.
func waitRunning(t *testing.T, e *env, id string) {
	t.Helper()
	deadline := time.Now().Add(cmdTimeout)
	for time.Now().Before(deadline) {
		if taskStatus(t, e, id) == "RUNNING" {
			return
		}
		time.Sleep(100 * time.Millisecond) // polling an external CLI; no event to wait on
	}
	t.Fatalf("task %s never RUNNING", id)
}

// waitFile waits until path exists in the running container id, probing
// with exec.
func waitFile(t *testing.T, e *env, id, path string) {
	t.Helper()
	deadline := time.Now().Add(cmdTimeout)
	for i := 0; time.Now().Before(deadline); i++ {
		r := ctr(t, e.c, nil, "task", "exec", "--exec-id", "probe"+strconv.Itoa(i), id, "test", "-e", path)
		if r.code == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond) // polling the container; it has no way to notify
	}
	t.Fatalf("%s never appeared in %s", path, id)
}

// taskStatus is the STATUS column of `ctr task ls` for id.
func taskStatus(t *testing.T, e *env, id string) string {
	r := mustCtr(t, e.c, "task", "ls")
	for _, line := range strings.Split(r.stdout, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == id {
			return f[2]
		}
	}
	return ""
}

// deleteContainer removes a detached container and its task.
func deleteContainer(t *testing.T, e *env, id string) {
	t.Helper()
	ctr(t, e.c, nil, "task", "delete", id) // attach may have deleted it already
	mustCtr(t, e.c, "containers", "delete", id)
}

func testTerminal(t *testing.T, e *env, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := e.c.Ctr(ctx, runArgs([]string{"--rm", "-t"}, id, "sh", "-c", "test -t 0 && echo tty")...)
	f, err := pty.Start(cmd)
	if err != nil {
		t.Fatalf("start ctr under a pty: %v", err)
	}
	defer func() { _ = f.Close() }()
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(&out, f) // ends with EIO once ctr exits
		close(copied)
	}()
	err = cmd.Wait()
	_ = f.Close()
	<-copied
	if ctx.Err() != nil {
		t.Fatalf("ctr run -t timed out; output %q", out.String())
	}
	if err != nil {
		t.Fatalf("ctr run -t: %v; output %q", err, out.String())
	}
	if !strings.Contains(out.String(), "tty") {
		t.Fatalf("no terminal in the container; output %q", out.String())
	}
}

func testExec(t *testing.T, e *env, id string) {
	mustCtr(t, e.c, runArgs([]string{"-d"}, id, "sleep", "1000")...)
	waitRunning(t, e, id)
	r := mustCtr(t, e.c, "task", "exec", "--exec-id", "x", id, "echo", "hi")
	if strings.TrimSpace(r.stdout) != "hi" {
		t.Fatalf("exec stdout %q, want hi\n%s", r.stdout, r)
	}
	mustCtr(t, e.c, "task", "kill", "-s", "SIGKILL", id)
	r = ctr(t, e.c, nil, "task", "attach", id)
	if r.code != 137 {
		t.Fatalf("task exit %d after SIGKILL, want 137\n%s", r.code, r)
	}
	deleteContainer(t, e, id)
}

func testCommandNotFound(t *testing.T, e *env, id string) {
	r := ctr(t, e.c, nil, runArgs([]string{"--rm"}, id, "nosuchcmd")...)
	if r.code == 0 {
		t.Fatalf("nosuchcmd succeeded\n%s", r)
	}
	out := r.stdout + r.stderr
	if !strings.Contains(out, "nosuchcmd") || !strings.Contains(out, "not found") {
		t.Fatalf("error does not name nosuchcmd and \"not found\"\n%s", r)
	}
	// ctr run --rm does not remove a container whose task failed to start.
	ctr(t, e.c, nil, "containers", "delete", id)
}

func testVMKilled(t *testing.T, e *env, id string) {
	mustCtr(t, e.c, runArgs([]string{"-d"}, id, "sleep", "1000")...)
	waitRunning(t, e, id)
	pidFile := filepath.Join(e.stateDir, id, "qemu.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("qemu pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("qemu pid file %s: %v", pidFile, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("kill qemu %d: %v", pid, err)
	}
	r := ctr(t, e.c, nil, "task", "attach", id)
	if r.code != 255 && r.code != 137 {
		t.Fatalf("task exit %d after the VM was killed, want 255 (or 137)\n%s", r.code, r)
	}
	if st := taskStatus(t, e, id); st != "" && st != "STOPPED" {
		t.Fatalf("containerd sees the task as %s", st)
	}
	deleteContainer(t, e, id)
}

// testPod: a container annotated with a pod's sandbox id joins that pod's
// shim and VM; removing it leaves the pod running; the sandbox goes with
// the pod's last container.
func testPod(t *testing.T, e *env, id string) {
	member := id + "-member"
	t.Cleanup(func() { forceRemove(t, e, member) })
	mustCtr(t, e.c, runArgs([]string{"-d"}, id, "sleep", "1000")...)
	waitRunning(t, e, id)
	mustCtr(t, e.c, runArgs([]string{"-d", "--annotation", "io.kubernetes.cri.sandbox-id=" + id}, member, "sleep", "1000")...)
	waitRunning(t, e, member)
	if _, err := os.Stat(filepath.Join(e.stateDir, member)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the member got a sandbox of its own (%v)", err)
	}
	if a, b := taskPid(t, e, id), taskPid(t, e, member); a != b || a == "" {
		t.Fatalf("pod containers report VMM pids %q and %q, want one VM", a, b)
	}
	r := mustCtr(t, e.c, "task", "exec", "--exec-id", "x", member, "echo", "in-pod")
	if strings.TrimSpace(r.stdout) != "in-pod" {
		t.Fatalf("exec in member: %s", r)
	}
	mustCtr(t, e.c, "task", "delete", "--force", member)
	mustCtr(t, e.c, "containers", "delete", member)
	r = mustCtr(t, e.c, "task", "exec", "--exec-id", "y", id, "echo", "still-up")
	if strings.TrimSpace(r.stdout) != "still-up" {
		t.Fatalf("pod sandbox gone with its member: %s", r)
	}
	mustCtr(t, e.c, "task", "delete", "--force", id)
	mustCtr(t, e.c, "containers", "delete", id)
	checkNoLeftovers(t, e.stateDir, member)
}

// taskPid is the PID column of `ctr task ls` for id.
func taskPid(t *testing.T, e *env, id string) string {
	r := mustCtr(t, e.c, "task", "ls")
	for _, line := range strings.Split(r.stdout, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == id {
			return f[1]
		}
	}
	return ""
}

// testShimKilled: when the shim dies, containerd runs the shim's delete
// action, which must remove the orphaned VM, its helpers and mounts.
func testShimKilled(t *testing.T, e *env, id string) {
	mustCtr(t, e.c, runArgs([]string{"-d"}, id, "sleep", "1000")...)
	waitRunning(t, e, id)
	pid := integration.ShimPid(id)
	if pid == 0 {
		t.Fatalf("no shim process serving %s", id)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill shim %d: %v", pid, err)
	}
	// containerd notices the dead shim and runs `delete`; the task is gone
	// once it finished.
	deadline := time.Now().Add(cmdTimeout)
	for taskStatus(t, e, id) != "" && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond) // polling ctr: no event to wait on
	}
	if st := taskStatus(t, e, id); st != "" {
		t.Fatalf("task still listed as %s after its shim died", st)
	}
	// containerd drops the task before its cleanup of the dead shim ends.
	for len(harness.Leftovers(e.stateDir, id)) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond) // polling the host: no event to wait on
	}
	mustCtr(t, e.c, "containers", "delete", id)
	if err := harness.RemoveCtrFIFOs(id); err != nil {
		t.Error(err)
	}
}

// testMetrics: `ctr task metrics` shows the container's cgroup figures
// from the guest.
func testMetrics(t *testing.T, e *env, id string) {
	mustCtr(t, e.c, runArgs([]string{"-d"}, id, "sleep", "1000")...)
	waitRunning(t, e, id)
	r := mustCtr(t, e.c, "task", "metrics", "--format", "json", id)
	t.Logf("ctr task metrics: %s", strings.TrimSpace(r.stdout))
	for _, want := range []string{`"pids"`, `"memory"`, `"cpu"`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("metrics lack %s:\n%s", want, r.stdout)
		}
	}
	mustCtr(t, e.c, "task", "delete", "--force", id)
	mustCtr(t, e.c, "containers", "delete", id)
}
