package cgroup

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/cgroups"
	// Linked in as in the shim: with it, the library would write device
	// rules (deny-all, given none) unless told to skip devices.
	_ "github.com/opencontainers/cgroups/devices"
	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/test/integration"
)

// helperEnv makes the test binary a helper process (see TestMain).
const helperEnv = "VEIL_CGROUP_TEST_HELPER"

// TestMain runs the test binary as a helper when helperEnv is set. A
// helper waits for a byte on stdin (sent once the test has put it in its
// cgroup), then:
//
//	burn          spins on the CPU until killed
//	alloc <bytes> allocates and touches that much memory, prints "ok",
//	              and waits until killed
//	devices       opens /dev/null and /dev/zero, prints "ok" or the error
func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "burn":
		waitGo()
		for x := 0; ; x++ {
			_ = x * x
		}
	case "alloc":
		n, err := strconv.Atoi(os.Args[len(os.Args)-1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		waitGo()
		b := make([]byte, n)
		for i := 0; i < n; i += os.Getpagesize() {
			b[i] = 1
		}
		fmt.Println("ok")
		waitGo() // EOF at the test's end
		fmt.Println(b[0])
		os.Exit(0)
	case "devices":
		waitGo()
		for _, dev := range []string{"/dev/null", "/dev/zero"} {
			f, err := os.OpenFile(dev, os.O_RDWR, 0)
			if err != nil {
				fmt.Println(err)
				os.Exit(1)
			}
			_ = f.Close()
		}
		fmt.Println("ok")
		os.Exit(0)
	default:
		fmt.Fprintf(os.Stderr, "unknown %s=%q\n", helperEnv, os.Getenv(helperEnv))
		os.Exit(2)
	}
}

func waitGo() {
	var b [1]byte
	_, _ = os.Stdin.Read(b[:])
}

// needCgroups gates t on the integration gate (see test/integration):
// root and a cgroupfs to work in.
func needCgroups(t *testing.T) {
	t.Helper()
	integration.Require(t, integration.Root, integration.Cgroups)
}

// testParent returns a parent cgroup path unique to t, and removes it,
// with anything below it, when t ends.
func testParent(t *testing.T) string {
	t.Helper()
	name := regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(t.Name(), "_")
	p := fmt.Sprintf("/veil-cgroup-test-%d-%s", os.Getpid(), name)
	t.Cleanup(func() {
		c, err := Load(p)
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Delete(ctx); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return p
}

// child is a process started by a test.
type child struct {
	cmd  *exec.Cmd
	in   *os.File // the child's stdin
	out  *bufio.Reader
	done chan struct{} // closed once reaped; err and cmd.ProcessState are set
	err  error
}

// start starts name with args; it is killed and reaped when t ends.
func start(t *testing.T, env []string, name string, args ...string) *child {
	t.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = inR.Close()
	_ = outW.Close()
	c := &child{cmd: cmd, in: inW, out: bufio.NewReader(outR), done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.done
		_ = inW.Close()
		_ = outR.Close()
	})
	return c
}

func startHelper(t *testing.T, mode string, args ...string) *child {
	t.Helper()
	return start(t, []string{helperEnv + "=" + mode}, os.Args[0], append([]string{"-test.run=^$"}, args...)...)
}

// release lets a helper (or a shell reading a line) go on.
func (c *child) release(t *testing.T) {
	t.Helper()
	if _, err := c.in.Write([]byte("\n")); err != nil {
		t.Fatal(err)
	}
}

// waitKilled waits until c died of SIGKILL.
func (c *child) waitKilled(t *testing.T, why string) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("pid %d still running 10s after %s", c.cmd.Process.Pid, why)
	}
	ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("pid %d ended with %v after %s; want SIGKILL", c.cmd.Process.Pid, c.err, why)
	}
}

// waitFor polls cond until it holds, failing t after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %v", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	if path == "" {
		t.Fatal("no such control file (empty path)")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// wantLimits checks the limit files; values as the files read on v2
// ("max" for none; the CPU quota in microseconds per 100 ms, or "max").
func wantLimits(t *testing.T, c *Cgroup, memory, pids, quota string) {
	t.Helper()
	check := func(controller, file, want string) {
		t.Helper()
		if got := readFile(t, c.FilePath(controller, file)); got != want {
			t.Errorf("%s = %q; want %q", c.FilePath(controller, file), got, want)
		}
	}
	if c.V2() {
		check("", "memory.max", memory)
		check("", "pids.max", pids)
		check("", "cpu.max", quota+" 100000")
		return
	}
	if memory == "max" {
		// v1 reads "no limit" as the largest page-aligned int64.
		memory = "9223372036854771712"
	}
	if quota == "max" {
		quota = "-1"
	}
	check("memory", "memory.limit_in_bytes", memory)
	check("pids", "pids.max", pids)
	check("cpu", "cpu.cfs_quota_us", quota)
	check("cpu", "cpu.cfs_period_us", "100000")
}

func wantGone(t *testing.T, c *Cgroup) {
	t.Helper()
	for h, d := range c.Dirs() {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("hierarchy %q: %s still there (%v)", h, d, err)
		}
	}
}

func TestLifecycle(t *testing.T) {
	needCgroups(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	path := testParent(t) + "/sandbox"

	c, err := Create(ctx, path, Limits{MemoryBytes: 256 << 20, Pids: 64, CPUs: 1.5})
	if err != nil {
		t.Fatal(err)
	}
	if c.Path() != path {
		t.Errorf("Path() = %q; want %q", c.Path(), path)
	}
	dirs := c.Dirs()
	t.Logf("v2: %v, directories: %v", c.V2(), dirs)
	want := []string{""}
	if !c.V2() {
		want = []string{"memory", "cpu", "cpuacct", "pids"}
		if _, ok := dirs["devices"]; ok {
			t.Errorf("the devices hierarchy is joined: %v", dirs)
		}
	}
	for _, h := range want {
		if dirs[h] == "" {
			t.Errorf("no directory in hierarchy %q: %v", h, dirs)
		}
	}
	for h, d := range dirs {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			t.Errorf("hierarchy %q: %s: %v", h, d, err)
		}
	}
	wantLimits(t, c, strconv.Itoa(256<<20), "64", "150000")

	// A retried Create (after a crash, say) takes the cgroup over.
	if c, err = Create(ctx, path, Limits{MemoryBytes: 128 << 20, Pids: 32, CPUs: 1}); err != nil {
		t.Fatalf("Create again: %v", err)
	}
	wantLimits(t, c, strconv.Itoa(128<<20), "32", "100000")

	sleep := start(t, nil, "sleep", "1000")
	pid := sleep.cmd.Process.Pid
	if err := c.Add(pid); err != nil {
		t.Fatal(err)
	}
	for h, d := range dirs {
		procs, err := cgroups.GetPids(d)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(procs, pid) {
			t.Errorf("hierarchy %q: pid %d not in %s/cgroup.procs: %v", h, pid, d, procs)
		}
	}
	own, err := cgroups.ParseCgroupFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for h := range dirs {
		if own[h] != path {
			t.Errorf("/proc/%d/cgroup: hierarchy %q is %q; want %q", pid, h, own[h], path)
		}
	}
	if pids, err := c.Pids(); err != nil || !slices.Equal(pids, []int{pid}) {
		t.Errorf("Pids() = %v, %v; want [%d]", pids, err, pid)
	}
	if err := c.Add(0); err == nil {
		t.Error("Add(0) (which would move the caller) succeeded")
	}

	if err := c.Update(Limits{MemoryBytes: 512 << 20, Pids: 128, CPUs: 2}); err != nil {
		t.Fatal(err)
	}
	wantLimits(t, c, strconv.Itoa(512<<20), "128", "200000")
	if err := c.Update(Limits{}); err != nil {
		t.Fatal(err)
	}
	wantLimits(t, c, "max", "max", "max")
	if err := c.Update(Limits{Pids: -1}); err == nil {
		t.Error("Update with a negative pids limit succeeded")
	}

	st, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stats: %+v", st)
	if st.Pids != 1 {
		t.Errorf("Stats().Pids = %d; want 1", st.Pids)
	}

	// Cleanup after a crash: a fresh Load finds the same directories.
	l, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(l.Dirs()) != fmt.Sprint(dirs) {
		t.Errorf("Load: directories %v; Create had %v", l.Dirs(), dirs)
	}
	if err := l.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	sleep.waitKilled(t, "Delete")
	wantGone(t, c)
	if err := l.Delete(ctx); err != nil {
		t.Errorf("Delete again: %v", err)
	}
	if err := c.Delete(ctx); err != nil {
		t.Errorf("Delete through the first handle: %v", err)
	}
	if _, err := c.Stats(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stats of a deleted cgroup: %v; want ErrNotExist", err)
	}
}

// TestDeleteKillsForks checks that Delete kills processes started inside
// after Add, not only the one added.
func TestDeleteKillsForks(t *testing.T) {
	needCgroups(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Create(ctx, testParent(t)+"/sandbox", Limits{Pids: 16})
	if err != nil {
		t.Fatal(err)
	}
	// The forked sleeps are orphaned when their parent dies: be their
	// reaper, to see how they died.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) }()
	sh := start(t, nil, "sh", "-c", "read x; sleep 1000 & sleep 1000 & exec sleep 1000")
	if err := c.Add(sh.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	sh.release(t)
	var pids []int
	waitFor(t, 10*time.Second, "3 processes in the cgroup", func() (bool, error) {
		pids, err = c.Pids()
		return len(pids) == 3, err
	})
	if err := c.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	sh.waitKilled(t, "Delete")
	for _, pid := range pids {
		if pid == sh.cmd.Process.Pid {
			continue
		}
		var ws unix.WaitStatus
		if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
			t.Fatalf("wait for forked pid %d: %v", pid, err)
		}
		if !ws.Signaled() || ws.Signal() != unix.SIGKILL {
			t.Errorf("forked pid %d: wait status %#x; want killed by SIGKILL", pid, ws)
		}
	}
	wantGone(t, c)
}

// TestCPU checks CPU accounting and throttling: a helper spinning under a
// 0.1 CPU quota gets throttled.
func TestCPU(t *testing.T) {
	needCgroups(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Create(ctx, testParent(t)+"/sandbox", Limits{CPUs: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	wantLimits(t, c, "max", "max", "10000")
	burn := startHelper(t, "burn")
	if err := c.Add(burn.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	burn.release(t)
	var st Stats
	waitFor(t, 20*time.Second, "CPU use and throttling", func() (bool, error) {
		st, err = c.Stats()
		return st.CPUNanos > 0 && st.NrThrottled > 0, err
	})
	t.Logf("stats: %+v", st)
	if err := c.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	burn.waitKilled(t, "Delete")
	wantGone(t, c)
}

// TestCPUUnderParentQuota checks a sandbox cgroup below a parent with a
// CPU quota (a pod's): on v1, which refuses a child quota above its
// parent's, it gets none of its own when asking for more; on v2 it gets
// what it asks (the kernel applies the minimum).
func TestCPUUnderParentQuota(t *testing.T) {
	needCgroups(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	parent := testParent(t)
	if _, err := Create(ctx, parent, Limits{CPUs: 0.5}); err != nil {
		t.Fatal(err)
	}
	c, err := Create(ctx, parent+"/sandbox", Limits{CPUs: 2})
	if err != nil {
		t.Fatal(err)
	}
	if c.V2() {
		wantLimits(t, c, "max", "max", "200000")
	} else {
		wantLimits(t, c, "max", "max", "max")
	}
	if err := c.Update(Limits{CPUs: 0.25}); err != nil {
		t.Fatal(err)
	}
	wantLimits(t, c, "max", "max", "25000")
	if err := c.Delete(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestMemory checks that memory allocated after Add is charged to the
// cgroup, and that the limit holds.
func TestMemory(t *testing.T) {
	needCgroups(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	parent := testParent(t)

	c, err := Create(ctx, parent+"/charged", Limits{MemoryBytes: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	before, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	alloc := startHelper(t, "alloc", strconv.Itoa(64<<20))
	if err := c.Add(alloc.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	alloc.release(t)
	if line, err := alloc.out.ReadString('\n'); err != nil || line != "ok\n" {
		t.Fatalf("helper said %q, %v; want ok", line, err)
	}
	after, err := c.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("memory charged: %d before Add, %d after allocating 64 MiB", before.MemoryBytes, after.MemoryBytes)
	if after.MemoryBytes < 64<<20 {
		t.Errorf("memory charged after allocating 64 MiB: %d bytes", after.MemoryBytes)
	}
	// Shrinking the limit below the usage is refused (v1: EBUSY; v2: the
	// library's check), not paid for with an OOM kill.
	if err := c.Update(Limits{MemoryBytes: 16 << 20}); err == nil {
		t.Error("Update to a memory limit below the usage succeeded")
	} else {
		t.Logf("Update below the usage: %v", err)
	}
	select {
	case <-alloc.done:
		t.Fatalf("the helper died: %v", alloc.err)
	default:
	}
	if err := c.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	alloc.waitKilled(t, "Delete")

	// Over the limit: the OOM killer (nothing to swap to) or, with swap,
	// nothing to check.
	if swaps, err := os.ReadFile("/proc/swaps"); err != nil || strings.Count(string(swaps), "\n") > 1 {
		t.Logf("swap is on (or unknown: %v): not checking the OOM kill", err)
		return
	}
	c, err = Create(ctx, parent+"/oom", Limits{MemoryBytes: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	oom := startHelper(t, "alloc", strconv.Itoa(128<<20))
	if err := c.Add(oom.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	oom.release(t)
	oom.waitKilled(t, "allocating 128 MiB under a 32 MiB limit")
	if err := c.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	wantGone(t, c)
}

// TestDevicesUntouched checks that a process in the sandbox cgroup can
// still open devices: no device rules are written (the VMM needs
// /dev/kvm, /dev/net/tun, ...; the jail decides what it sees).
func TestDevicesUntouched(t *testing.T) {
	needCgroups(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Create(ctx, testParent(t)+"/sandbox", Limits{MemoryBytes: 64 << 20, Pids: 64, CPUs: 1})
	if err != nil {
		t.Fatal(err)
	}
	h := startHelper(t, "devices")
	if err := c.Add(h.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	h.release(t)
	if line, err := h.out.ReadString('\n'); err != nil || line != "ok\n" {
		t.Fatalf("opening devices in the cgroup: %q, %v", line, err)
	}
	if err := c.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	wantGone(t, c)
}

// TestCreateRefuses checks the errors Create and Load give before
// touching the cgroupfs.
func TestCreateRefuses(t *testing.T) {
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for _, tc := range []struct {
		name    string
		ctx     context.Context
		path    string
		l       Limits
		wantErr string
	}{
		{name: "relative", ctx: ctx, path: "relative/x", wantErr: `"relative/x" is relative`},
		{name: "dotdot", ctx: ctx, path: "/a/../b", wantErr: `contains ".."`},
		{name: "unclean", ctx: ctx, path: "/a/b/", wantErr: "is not clean"},
		{name: "root", ctx: ctx, path: "/", wantErr: "root cgroup"},
		{name: "negative CPUs", ctx: ctx, path: "/x", l: Limits{CPUs: -1}, wantErr: "CPU limit -1"},
		{name: "cancelled", ctx: cancelled, path: "/x", wantErr: context.Canceled.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Create(tc.ctx, tc.path, tc.l); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Create(%q, %+v) = %v; want an error containing %q", tc.path, tc.l, err, tc.wantErr)
			}
			if tc.l != (Limits{}) || tc.ctx != ctx {
				return
			}
			if _, err := Load(tc.path); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Load(%q) = %v; want an error containing %q", tc.path, err, tc.wantErr)
			}
		})
	}
}

// TestDeleteConcurrently deletes one cgroup from two handles at once, as
// two shims cleaning up the same sandbox do: each Delete succeeds, whether
// it finds the cgroup, finds it half removed (its cgroup.procs reads
// ENODEV once the directory is removed), or finds it gone.
func TestDeleteConcurrently(t *testing.T) {
	needCgroups(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	parent := testParent(t)
	for i := range 30 {
		path := fmt.Sprintf("%s/twice-%d", parent, i)
		if _, err := Create(ctx, path, Limits{Pids: 16}); err != nil {
			t.Fatal(err)
		}
		handles := make([]*Cgroup, 2)
		for j := range handles {
			c, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			handles[j] = c
		}
		errs := make(chan error, len(handles))
		for _, c := range handles {
			go func() { errs <- c.Delete(ctx) }()
		}
		for range handles {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: Delete beside another Delete: %v", i, err)
			}
		}
		wantGone(t, handles[0])
	}
}

func TestRemoved(t *testing.T) {
	procs := "/sys/fs/cgroup/cpu/veil/x/cgroup.procs"
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"cgroup.procs of a removed cgroup", &os.PathError{Op: "read", Path: procs, Err: unix.ENODEV}, true},
		{"wrapped ENODEV", fmt.Errorf("walk: %w", &os.PathError{Op: "read", Path: procs, Err: unix.ENODEV}), true},
		{"directory gone", &os.PathError{Op: "open", Path: procs, Err: unix.ENOENT}, true},
		{"permission denied", &os.PathError{Op: "open", Path: procs, Err: unix.EACCES}, false},
		{"other", errors.New("boom"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := removed(tc.err); got != tc.want {
				t.Errorf("removed(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
