package torture

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/test/cri"
	"github.com/veil-runtime/veil/test/criimage"
	"github.com/veil-runtime/veil/test/harness"
	"github.com/veil-runtime/veil/test/integration"
)

// counts sizes the load cases: CI-sized by default, the full
// counts under VEIL_TORTURE=full (make torture).
type counts struct {
	Cycles      int   // sequential run/exec/remove cycles
	Parallel    int   // pods started at once
	ExecSeq     int   // sequential ExecSyncs on one pod
	ExecPar     int   // ExecSyncs in flight at once
	StdoutBytes int64 // stdout a slow client reads
}

func full() bool { return os.Getenv("VEIL_TORTURE") == "full" }

func countsName() string {
	if full() {
		return "full"
	}
	return "CI-sized"
}

func load() counts {
	if full() {
		return counts{Cycles: 100, Parallel: 10, ExecSeq: 2000, ExecPar: 100, StdoutBytes: 1 << 30}
	}
	return counts{Cycles: 5, Parallel: 3, ExecSeq: 200, ExecPar: 20, StdoutBytes: 64 << 20}
}

const (
	// exitBound is how soon containerd must see every task of a pod exit
	// after a fault (the 10 s).
	exitBound = 10 * time.Second
	// callBound bounds one CRI call that boots or tears down a VM under
	// TCG on a loaded 2-core host.
	callBound = 2 * time.Minute
	// settleBound is how long the host may take to be clean once a pod
	// is removed (the shim exits after answering).
	settleBound = 15 * time.Second
)

// fixture is a private containerd in CRI mode (ctr reaches the same
// daemon) with a Veil config of the test's own.
type fixture struct {
	ctx      context.Context
	c        *harness.Containerd
	cl       *cri.Client
	cfg      *config.Config
	cfgPath  string
	stateDir string
	logs     string
}

// newFixture starts the shared CRI fixture (cri.NewFixture); on failure
// it logs containerd's warnings and errors. tune adjusts the Veil config.
func newFixture(t testing.TB, tune ...func(*config.Config)) *fixture {
	t.Helper()
	s := cri.NewFixture(t, func(path string) string { return problems(path, 80) }, tune...)
	return &fixture{ctx: s.Ctx, c: s.C, cl: s.Client, cfg: s.Config, cfgPath: s.ConfigPath, stateDir: s.StateDir, logs: s.Logs}
}

// pod is a running Veil pod of the test.
type pod struct {
	id   string
	cfg  *runtimeapi.PodSandboxConfig
	ctrs []string
}

// podConfig is a pod config named name logging under the test's logs.
func podConfig(f *fixture, name string) *runtimeapi.PodSandboxConfig {
	return cri.PodConfig(name, filepath.Join(f.logs, name))
}

// shell is a busybox container running sh -c script.
func shell(name, script string) *runtimeapi.ContainerConfig {
	return cri.Container(name, criimage.Busybox, "sh", "-c", script)
}

// runPod starts a Veil pod named name; Cleanup removes it if the case did
// not.
func (f *fixture) runPod(t testing.TB, name string) *pod {
	t.Helper()
	cfg := podConfig(f, name)
	ctx, cancel := context.WithTimeout(f.ctx, callBound)
	defer cancel()
	id, err := f.cl.RunPod(ctx, cfg, harness.HandlerVeil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(f.ctx), callBound)
		defer cancel()
		_ = f.cl.RemovePod(ctx, id) // the case removed it already, or failed
	})
	return &pod{id: id, cfg: cfg}
}

// start starts a busybox container running script in p.
func (f *fixture) start(t testing.TB, p *pod, name, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, callBound)
	defer cancel()
	id, err := f.cl.StartContainer(ctx, p.id, p.cfg, shell(name, script))
	if err != nil {
		t.Fatal(err)
	}
	p.ctrs = append(p.ctrs, id)
	return id
}

// podOfTwo is a running pod with two long-running containers.
func (f *fixture) podOfTwo(t testing.TB, name string) *pod {
	t.Helper()
	p := f.runPod(t, name)
	f.start(t, p, "a", "echo a-up; exec sleep 100000")
	f.start(t, p, "b", "echo b-up; exec sleep 100000")
	return p
}

// waitAllExited waits up to d for every container of p to exit and
// returns the time that took and their statuses.
func (f *fixture) waitAllExited(t testing.TB, p *pod, d time.Duration) (time.Duration, []*runtimeapi.ContainerStatus) {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(f.ctx, d)
	defer cancel()
	var sts []*runtimeapi.ContainerStatus
	for _, id := range p.ctrs {
		st, err := f.cl.WaitExited(ctx, id)
		if err != nil {
			t.Fatalf("after %s: %v", time.Since(start).Round(time.Millisecond), err)
		}
		sts = append(sts, st)
	}
	return time.Since(start), sts
}

// remove stops and removes p (CRI stopp + rmp), bounded by callBound, and
// returns how long that took.
func (f *fixture) remove(t testing.TB, p *pod) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(f.ctx, callBound)
	defer cancel()
	if err := f.cl.RemovePod(ctx, p.id); err != nil {
		t.Fatalf("after %s: %v", time.Since(start).Round(time.Millisecond), err)
	}
	return time.Since(start)
}

// helperPid is the pid of one of p's helpers: "qemu", "virtiofsd",
// "vhost-vsock" (pid files in the sandbox directory) or "shim".
func (f *fixture) helperPid(t testing.TB, p *pod, name string) int {
	t.Helper()
	if name == "shim" {
		if pid := integration.ShimPid(p.id); pid != 0 {
			return pid
		}
		t.Fatalf("no shim serves %s", p.id)
	}
	return harness.HelperPid(t, f.stateDir, p.id, name)
}

// kill9 sends SIGKILL to pid.
func kill9(t testing.TB, pid int) {
	t.Helper()
	if pid <= 0 {
		t.Fatalf("kill -9: no process (pid %d)", pid)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
}

// census is the leak census of one case: base before it, peak while its
// sandbox ran (proof the census sees a sandbox at all).
type census struct {
	f    *fixture
	base *harness.Census
	peak []string
}

func (f *fixture) census() *census { return &census{f: f, base: f.c.Census()} }

// sample records what the running case added to the host.
func (c *census) sample() { c.peak = c.f.c.Census().Since(c.base) }

// clean waits up to settleBound for the host to be back at base and
// fails t with the leaks otherwise; it returns the table's census cell.
func (c *census) clean(t testing.TB) string { t.Helper(); return c.cleanExcept(t, "", nil) }

// cleanExcept is clean with the items owned tolerates (named by why in
// the cell) kept apart from the leaks.
func (c *census) cleanExcept(t testing.TB, why string, owned func(item string) bool) string {
	t.Helper()
	leaks := harness.Settle(c.base, c.f.c.CensusScope(), settleBound)
	var kept []string
	if owned != nil {
		var rest []string
		for _, l := range leaks {
			if owned(l) {
				kept = append(kept, l)
			} else {
				rest = append(rest, l)
			}
		}
		leaks = rest
	}
	cell := "0 leaks"
	if len(kept) > 0 {
		cell += fmt.Sprintf(" (%s left by %s)", kinds(kept), why)
	}
	if len(leaks) > 0 {
		t.Errorf("leak census: %d left after the case:\n  %s", len(leaks), strings.Join(leaks, "\n  "))
		cell = fmt.Sprintf("**%d leaks** (%s)", len(leaks), kinds(leaks))
	}
	if len(c.peak) > 0 {
		cell += "; seen while running: " + kinds(c.peak)
	}
	return cell
}

// kinds sums "kind: item" lines by kind: "3 process, 12 mount".
func kinds(items []string) string {
	n := map[string]int{}
	for _, it := range items {
		k, _, _ := strings.Cut(it, ":")
		n[k]++
	}
	var ks []string
	for k := range n {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%d %s", n[k], k))
	}
	return strings.Join(parts, ", ")
}

// exits describes the statuses of a pod's containers for the table.
func exits(sts []*runtimeapi.ContainerStatus) string {
	var parts []string
	for _, st := range sts {
		parts = append(parts, fmt.Sprintf("exit %d %s", st.GetExitCode(), st.GetReason()))
	}
	return strings.Join(parts, ", ")
}

func ms(d time.Duration) string { return d.Round(10 * time.Millisecond).String() }

// problems returns the last n warning and error lines of a log.
func problems(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "level=error") || strings.Contains(l, "level=warning") || strings.Contains(l, "level=fatal") {
			out = append(out, l)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return strings.Join(out, "\n")
}
