package pool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// The daemon's tests run it with fake keepers: this test binary,
// re-executed with fakeKeeperEnv set, speaks the keeper's side of the
// protocol without booting anything (the real keeper is tested with
// VMs in test/e2e).
const fakeKeeperEnv = "VEIL_POOL_FAKE_KEEPER"

func TestMain(m *testing.M) {
	if os.Getenv(fakeKeeperEnv) != "" {
		if err := fakeKeeper(); err != nil {
			fmt.Fprintln(os.Stderr, "fake keeper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fakeKeeper is Keep without a VM: its VM directory is an empty
// directory; "fail" in $VEIL_POOL_FAKE_KEEPER makes it fail its boot.
func fakeKeeper() error {
	cfg, err := config.Load(os.Getenv(config.EnvPath))
	if err != nil {
		return err
	}
	dirArg := os.Args[len(os.Args)-1]
	vmid := filepath.Base(dirArg)
	f := os.NewFile(3, "owner")
	owner, err := unixConn(f)
	_ = f.Close()
	if err != nil {
		return err
	}
	lock, err := lockVM(cfg.StateDir, vmid)
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(lock.Name()) }()
	dir := filepath.Join(cfg.StateDir, statedir.PoolDirName, vmid)
	if os.Getenv(fakeKeeperEnv) == "fail" {
		return send(owner, reply{State: "failed", Error: "injected boot failure"}, nil, time.Now().Add(time.Second))
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	key, err := Key(cfg, cfg.Pool.NICs)
	if err != nil {
		return err
	}
	if err := send(owner, reply{State: "ready", KeeperPid: os.Getpid(), Key: key, BootSecs: 0.01}, nil, time.Now().Add(time.Second)); err != nil {
		return err
	}
	claimed := false
	for {
		var req request
		files, err := receive(owner, &req, time.Time{})
		closeFiles(files)
		if err != nil {
			break
		}
		claimed = true
		if err := send(owner, reply{State: "claimed"}, nil, time.Now().Add(time.Second)); err != nil {
			break
		}
	}
	if !claimed {
		return os.Remove(dir)
	}
	// A claimed VM's directory is the claimant's to remove; the test
	// marks that the keeper saw its owner go.
	return os.WriteFile(filepath.Join(dir, "released"), nil, 0o600)
}

// testPool is a daemon with fake keepers on a temporary state dir.
type testPool struct {
	cfg    *config.Config
	cancel context.CancelFunc
	done   chan error
}

func startTestPool(t *testing.T, size int, keeperMode string) *testPool {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.Pool.Size = size
	cfg.Pool.Socket = filepath.Join(dir, "pool.sock")
	cfg.Cgroups.Enabled = false
	cfg.Guest.Kernel = filepath.Join(dir, "vmlinux")
	cfgPath := filepath.Join(dir, "config.toml")
	writeConfig(t, cfg, cfgPath)
	t.Setenv(config.EnvPath, cfgPath)
	t.Setenv(fakeKeeperEnv, keeperMode)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Daemon{Config: cfg, ConfigPath: cfgPath, KeeperArgs: []string{exe}}
	p := &testPool{cfg: cfg, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- d.Serve(ctx) }()
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *testPool) stop(t *testing.T) {
	t.Helper()
	p.cancel()
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon did not stop")
	}
	p.done <- nil // a second stop returns at once
}

// waitReady waits until the pool lists n ready VMs.
func (p *testPool) waitReady(t *testing.T, n int) Status {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := List(context.Background(), p.cfg)
		ready := 0
		for _, v := range st.VMs {
			if v.State == "ready" {
				ready++
			}
		}
		if err == nil && ready == n {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool never had %d ready VMs: %+v, %v", n, st, err)
		}
		time.Sleep(20 * time.Millisecond) // the daemon has no event to wait on
	}
}

func writeConfig(t *testing.T, cfg *config.Config, path string) {
	t.Helper()
	b := fmt.Sprintf("state_dir = %q\n[cgroups]\nenabled = false\n[guest]\nkernel = %q\n[pool]\nsize = %d\nsocket = %q\n",
		cfg.StateDir, cfg.Guest.Kernel, cfg.Pool.Size, cfg.Pool.Socket)
	if err := os.WriteFile(path, []byte(b), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestClaim(t *testing.T) {
	p := startTestPool(t, 2, "ok")
	p.waitReady(t, 2)
	ctx := context.Background()
	c, err := Claim(ctx, p.cfg, "pod1", p.cfg.Pool.NICs)
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	if got := c.Dir.ID(); got != "pod1" {
		t.Errorf("claimed dir id %q", got)
	}
	link, err := os.Readlink(filepath.Join(p.cfg.StateDir, "pod1"))
	if err != nil || link != statedir.PoolDirName+"/"+c.Dir.PoolID() {
		t.Errorf("sandbox link = %q, %v", link, err)
	}
	// The claimed VM left the pool, which refills.
	st := p.waitReady(t, 2)
	for _, v := range st.VMs {
		if v.ID == c.Dir.PoolID() {
			t.Errorf("claimed VM %s still listed", v.ID)
		}
	}
	// Stopping the daemon leaves a claimed VM alone.
	p.stop(t)
	if _, err := os.Stat(c.Dir.Path()); err != nil {
		t.Errorf("claimed VM directory gone with the daemon: %v", err)
	}
	if got := PoolDirs(t, p.cfg.StateDir); len(got) != 1 {
		t.Errorf("pool directories after stop: %q, want only the claimed one", got)
	}
	// Releasing the keeper ends it.
	if err := c.Keeper.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if _, err := os.Stat(filepath.Join(c.Dir.Path(), "released")); err != nil {
		t.Errorf("keeper did not see its owner go: %v", err)
	}
	// Exited (its parent, the test's daemon, reaps it).
	waitGone(t, c.Keeper.Pid())
}

// PoolDirs lists the pool VM directories.
func PoolDirs(t *testing.T, stateDir string) []string {
	ids, err := statedir.PoolVMs(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestClaimUnavailable(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T) *config.Config
	}{
		{"no daemon", func(t *testing.T) *config.Config {
			cfg := config.Default()
			cfg.StateDir = t.TempDir()
			cfg.Pool.Socket = filepath.Join(t.TempDir(), "none.sock")
			return cfg
		}},
		{"dead daemon's socket", func(t *testing.T) *config.Config {
			cfg := config.Default()
			cfg.StateDir = t.TempDir()
			cfg.Pool.Socket = filepath.Join(t.TempDir(), "dead.sock")
			l, err := net.Listen("unix", cfg.Pool.Socket)
			if err != nil {
				t.Fatal(err)
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			_ = l.Close()
			return cfg
		}},
		{"other configuration", func(t *testing.T) *config.Config {
			p := startTestPool(t, 1, "ok")
			p.waitReady(t, 1)
			cfg := *p.cfg
			cfg.Guest.MemoryMiB++
			return &cfg
		}},
		{"empty pool", func(t *testing.T) *config.Config {
			p := startTestPool(t, 1, "fail")
			return p.cfg
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.setup(t)
			_, err := Claim(context.Background(), cfg, "pod1", cfg.Pool.NICs)
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Claim = %v, want ErrUnavailable", err)
			}
			if _, err := os.Lstat(filepath.Join(cfg.StateDir, "pod1")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused claim left %s (%v)", filepath.Join(cfg.StateDir, "pod1"), err)
			}
		})
	}
}

// TestDaemonKilled: the daemon killed with SIGKILL takes every idle VM
// with it (their keepers see their owner go), and a new daemon starts
// cleanly on what is left. The daemon runs in a child process here, so
// that it can be killed.
func TestDaemonKilled(t *testing.T) {
	if os.Getenv("VEIL_POOL_TEST_DAEMON") != "" {
		// The child: serve until killed.
		p := startTestPool(t, 2, "ok")
		p.waitReady(t, 2)
		_ = os.WriteFile(os.Getenv("VEIL_POOL_TEST_DAEMON"), []byte(p.cfg.StateDir), 0o600)
		select {}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "state")
	cmd := exec.Command(exe, "-test.run=^TestDaemonKilled$")
	cmd.Env = append(os.Environ(), "VEIL_POOL_TEST_DAEMON="+out)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var stateDir string
	deadline := time.Now().Add(30 * time.Second)
	for stateDir == "" {
		b, _ := os.ReadFile(out)
		stateDir = string(b)
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatal("the child daemon never filled its pool")
		}
		time.Sleep(20 * time.Millisecond) // a file from another process: nothing to wait on
	}
	keepers := keeperPids(t, stateDir)
	if len(keepers) != 2 {
		t.Fatalf("keepers %v, want 2", keepers)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	for _, pid := range keepers {
		waitGone(t, pid)
	}
	if left := PoolDirs(t, stateDir); len(left) != 0 {
		t.Errorf("idle VMs left after the daemon was killed: %q", left)
	}
	t.Cleanup(func() { _ = os.RemoveAll(filepath.Dir(stateDir)) })
}

// keeperPids reads the fake keepers' pids from their lock files' holders.
func keeperPids(t *testing.T, stateDir string) []int {
	t.Helper()
	ids, err := statedir.PoolVMs(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		for _, id := range ids {
			if containsArg(b, filepath.Join(stateDir, statedir.PoolDirName, id)+"/") {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

func containsArg(cmdline []byte, arg string) bool {
	for _, a := range splitNul(cmdline) {
		if a == arg {
			return true
		}
	}
	return false
}

func splitNul(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			out = append(out, string(b[start:i]))
			start = i + 1
		}
	}
	return out
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for unix.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("keeper %d still runs", pid)
		}
		time.Sleep(20 * time.Millisecond) // not our child: nothing to wait on
	}
}

func TestKey(t *testing.T) {
	base := config.Default()
	k0, err := Key(base, 1)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		change func(c *config.Config)
		same   bool
	}{
		{"memory", func(c *config.Config) { c.Guest.MemoryMiB++ }, false},
		{"vcpus", func(c *config.Config) { c.Guest.VCPUs++ }, false},
		{"kernel params", func(c *config.Config) { c.Guest.KernelParams = "quiet" }, false},
		{"hypervisor", func(c *config.Config) { c.Hypervisor.Name = "qemu" }, false},
		{"jail", func(c *config.Config) { c.Jail.Enabled = false }, false},
		{"cgroup parent", func(c *config.Config) { c.Cgroups.Parent = "/other" }, false},
		{"state dir", func(c *config.Config) { c.StateDir = "/other" }, false},
		{"virtiofs cache", func(c *config.Config) { c.Virtiofs.Cache = "never" }, false},
		{"timeouts", func(c *config.Config) { c.Timeouts.AgentRequest.Duration++ }, true},
		{"pool size", func(c *config.Config) { c.Pool.Size = 3 }, true},
		{"volumes", func(c *config.Config) { c.Volumes.AllowedHostPaths = nil }, true},
	}
	if k2, _ := Key(base, 0); k2 == k0 {
		t.Error("a VM without NICs has the key of one with a NIC")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := config.Default()
			c.change(cfg)
			k, err := Key(cfg, 1)
			if err != nil {
				t.Fatal(err)
			}
			if (k == k0) != c.same {
				t.Errorf("key same = %v, want %v", k == k0, c.same)
			}
		})
	}
	t.Run("kernel file replaced", func(t *testing.T) {
		cfg := config.Default()
		cfg.Guest.Kernel = filepath.Join(t.TempDir(), "vmlinux")
		if err := os.WriteFile(cfg.Guest.Kernel, []byte("a"), 0o600); err != nil {
			t.Fatal(err)
		}
		k1, _ := Key(cfg, 1)
		if err := os.WriteFile(cfg.Guest.Kernel+".new", []byte("bb"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(cfg.Guest.Kernel+".new", cfg.Guest.Kernel); err != nil {
			t.Fatal(err)
		}
		if k2, _ := Key(cfg, 1); k1 == k2 {
			t.Error("a replaced kernel keeps the key")
		}
	})
}

func TestWire(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	fa, fb := os.NewFile(uintptr(fds[0]), "a"), os.NewFile(uintptr(fds[1]), "b")
	a, err := unixConn(fa)
	if err != nil {
		t.Fatal(err)
	}
	b, err := unixConn(fb)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = fa.Close(), fb.Close()
	defer func() { _, _ = a.Close(), b.Close() }()
	passed, err := os.CreateTemp(t.TempDir(), "passed")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := passed.WriteString("through"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	if err := send(a, reply{VM: "vm1"}, []*os.File{passed, passed}, deadline); err != nil {
		t.Fatal(err)
	}
	var r reply
	files, err := receive(b, &r, deadline)
	if err != nil || len(files) != 2 || r.VM != "vm1" {
		t.Fatalf("receive = %+v, %v, %v", r, files, err)
	}
	defer closeFiles(files)
	got := make([]byte, 7)
	if _, err := files[1].ReadAt(got, 0); err != nil || string(got) != "through" {
		t.Fatalf("passed file reads %q, %v", got, err)
	}
	// More descriptors than a message may carry are refused (and closed).
	if err := send(a, reply{VM: "vm2"}, []*os.File{passed, passed, passed}, deadline); err != nil {
		t.Fatal(err)
	}
	if files, err := receive(b, &r, deadline); err == nil {
		closeFiles(files)
		t.Fatal("three descriptors accepted")
	}
	// Without a descriptor.
	if err := send(b, request{Op: "list"}, nil, deadline); err != nil {
		t.Fatal(err)
	}
	var req request
	if files, err := receive(a, &req, deadline); err != nil || len(files) != 0 || req.Op != "list" {
		t.Fatalf("receive = %+v, %v, %v", req, files, err)
	}
	// Garbage is an error, not a message.
	if _, err := b.Write([]byte("{not json\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := receive(a, &req, deadline); err == nil {
		t.Fatal("garbage accepted")
	}
}
