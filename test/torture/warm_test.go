package torture

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/veil-runtime/veil/runtime/pool"
	"github.com/veil-runtime/veil/runtime/sandbox"
	"github.com/veil-runtime/veil/runtime/statedir"
	"github.com/veil-runtime/veil/test/cri"
	"github.com/veil-runtime/veil/test/harness"
	"github.com/veil-runtime/veil/test/integration"
)

// The warm pool's cases: pods that claim pre-booted VMs (runtime/pool),
// one after the other, and the pool's own processes killed: a claimed
// VM's keeper (or another helper of a warm pod), and the daemon.

// warmCycles is how many warm pods TestWarmPoolCycles runs in a row: the
// pool of two is replaced three times over in CI.
func warmCycles() int {
	if full() {
		return load().Cycles
	}
	return 6
}

// idleGoneBound is how soon an idle pool VM's keeper must have removed
// the VM (its processes and directory) once its owner, the daemon, died:
// the keeper's own teardown bound (runtime/pool keeperStopTimeout).
const idleGoneBound = 30 * time.Second

// warmFixture is the suite's fixture with the warm pool on.
type warmFixture struct {
	*fixture
	s *cri.Fixture
	// killed is set once the case killed the daemon (own daemon only).
	killed bool
}

// fromShared is the suite's fixture of the shared CRI fixture s, as
// newFixture makes it.
func fromShared(s *cri.Fixture) *fixture {
	return &fixture{ctx: s.Ctx, c: s.C, cl: s.Client, cfg: s.Config, cfgPath: s.ConfigPath, stateDir: s.StateDir, logs: s.Logs}
}

// newWarmFixture starts the shared CRI fixture with a warm pool of size
// VMs; its daemon is the fixture's (cri.NewFixture starts and stops it).
func newWarmFixture(t testing.TB, size int) *warmFixture {
	t.Helper()
	s := cri.NewFixture(t, func(log string) string { return problems(log, 80) }, cri.WarmPool(size))
	return &warmFixture{fixture: fromShared(s), s: s}
}

// newKillableFixture is newWarmFixture with a daemon the case may kill:
// the shared fixture stops its daemon at the end and reports one that
// died of SIGKILL, so here the fixture starts with the pool off and the
// case's own daemon runs on the same config, rewritten with the pool on
// (the shims load the config file at each start). Cleanup stops the
// daemon unless it was killed, and requires no pool VM to be left.
func newKillableFixture(t testing.TB, size int) *warmFixture {
	t.Helper()
	s := cri.NewFixture(t, func(log string) string { return problems(log, 80) })
	cri.WarmPool(size)(s.Config)
	if _, err := harness.WriteConfig(s.Config, filepath.Dir(s.ConfigPath), filepath.Base(s.ConfigPath)); err != nil {
		t.Fatal(err)
	}
	w := &warmFixture{fixture: fromShared(s), s: s}
	ctx, cancel := context.WithTimeout(s.Ctx, callBound)
	defer cancel()
	p, err := harness.StartPool(ctx, s.ConfigPath, filepath.Join(filepath.Dir(s.ConfigPath), "pool.log"))
	if err != nil {
		t.Fatal(err)
	}
	// Registered after containerd's stop, so it runs first.
	t.Cleanup(func() {
		if !w.killed {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(s.Ctx), time.Minute)
			defer cancel()
			if err := w.s.Pool.Stop(sctx); err != nil {
				t.Errorf("stop the pool: %v", err)
			}
		} else if err := os.Remove(s.Config.Pool.Socket); err != nil && !errors.Is(err, os.ErrNotExist) {
			// A killed daemon leaves its socket (the next one replaces
			// it); it is outside the state dir and the census.
			t.Error(err)
		}
		if left := harness.PoolDirs(s.StateDir); len(left) > 0 {
			t.Errorf("pool VMs left after the daemon went: %q", left)
		}
	})
	s.Pool = p
	s.WaitPoolFull(t)
	return w
}

// killPool kills the daemon with SIGKILL and waits for it.
func (w *warmFixture) killPool() {
	w.killed = true
	w.s.Pool.Kill()
}

// restartPool starts a daemon again after killPool, on the same config
// and log, and waits for it to fill the pool; cleanup stops it.
func (w *warmFixture) restartPool(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, callBound)
	defer cancel()
	p, err := harness.StartPool(ctx, w.s.Pool.ConfigPath, w.s.Pool.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	w.s.Pool, w.killed = p, false
	w.s.WaitPoolFull(t)
}

// warmPod is a pod running on a claimed pool VM.
type warmPod struct {
	*pod
	vmid  string
	lease string        // its VM's jail uid lease file ("" without the jail)
	run   time.Duration // RunPodSandbox
}

// runWarm waits for the pool to be full and starts a pod that must start
// warm.
func (w *warmFixture) runWarm(t testing.TB, name string) *warmPod {
	t.Helper()
	w.s.WaitPoolFull(t)
	start := time.Now()
	p := w.runPod(t, name)
	took := time.Since(start)
	w.s.CheckWarm(t, p.id)
	vmid := w.poolVM(t, p.id)
	return &warmPod{pod: p, vmid: vmid, lease: w.leaseOf(w.poolDir(vmid)), run: took}
}

// leaseOf is the jail uid lease file of the VM in directory dir (its
// jail-uid file names the uid); "" without the jail.
func (w *warmFixture) leaseOf(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, statedir.JailUIDFile))
	if err != nil {
		return ""
	}
	uid, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	if err != nil {
		return ""
	}
	return statedir.UIDLeaseFile(w.stateDir, uint32(uid))
}

// poolVM is the pool VM id the link <state_dir>/<id> names.
func (w *warmFixture) poolVM(t testing.TB, id string) string {
	t.Helper()
	target, err := os.Readlink(filepath.Join(w.stateDir, id))
	if err != nil {
		t.Fatal(err)
	}
	vmid, ok := strings.CutPrefix(target, statedir.PoolDirName+"/")
	if !ok {
		t.Fatalf("sandbox %s links to %q, not into the pool", id, target)
	}
	return vmid
}

// poolDir is pool VM vmid's directory.
func (w *warmFixture) poolDir(vmid string) string {
	return filepath.Join(w.stateDir, statedir.PoolDirName, vmid)
}

// keeperPid is the keeper of the pool VM sandbox id claimed: the
// keeper.pid of its directory (reached through the sandbox's link), whose
// command line must be `veil ... pool keep <that directory>`.
func (w *warmFixture) keeperPid(t testing.TB, id string) int {
	t.Helper()
	pid := harness.HelperPid(t, w.stateDir, id, "keeper")
	args := cmdline(pid)
	if !strings.Contains(args, " pool keep ") || !strings.Contains(args, w.poolDir(w.poolVM(t, id))) {
		t.Fatalf("keeper.pid of %s is %d, whose command line is %q", id, pid, args)
	}
	return pid
}

// readyVMs asks the daemon for its VMs and returns the ready ones.
func (w *warmFixture) readyVMs(t testing.TB) []pool.VM {
	t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, 30*time.Second)
	defer cancel()
	st, err := w.s.Pool.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []pool.VM
	for _, v := range st.VMs {
		if v.State == "ready" {
			out = append(out, v)
		}
	}
	return out
}

// checkPoolDirs fails t unless the pool directories are exactly the
// daemon's ready VMs, pool.size of them; it returns those VMs.
func (w *warmFixture) checkPoolDirs(t testing.TB) []pool.VM {
	t.Helper()
	ready := w.readyVMs(t)
	var want, got []string
	for _, v := range ready {
		want = append(want, v.ID)
	}
	for _, d := range harness.PoolDirs(w.stateDir) {
		got = append(got, filepath.Base(d))
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) || len(ready) != w.cfg.Pool.Size {
		t.Errorf("pool directories %q, want the daemon's %d ready VMs %q", got, w.cfg.Pool.Size, want)
	}
	return ready
}

// poolOwned tolerates, in a census, what the daemon's ready VMs hold:
// their keepers and the keepers' descendants (QEMU, the vsock daemon,
// virtiofsd), their jail uid leases, and whatever is under their pool
// directories or cgroups (sockets, mounts, the cgroup
// <parent>/.pool/<vmid>). The pool refills itself after every claim, so
// a case ends with VMs its base did not have.
func (w *warmFixture) poolOwned(vms []pool.VM) func(item string) bool {
	pids := map[int]bool{}
	leases := map[string]bool{}
	var paths []string
	for _, v := range vms {
		pids[v.KeeperPid] = true
		for _, pid := range descendants(v.KeeperPid) {
			pids[pid] = true
		}
		paths = append(paths, "/"+statedir.PoolDirName+"/"+v.ID)
		if l := w.leaseOf(w.poolDir(v.ID)); l != "" {
			leases[l] = true
		}
	}
	return func(item string) bool {
		kind, rest, _ := strings.Cut(item, ": ")
		switch kind {
		case harness.KindProcess:
			pid, _, _ := strings.Cut(rest, " ")
			if n, err := strconv.Atoi(pid); err == nil && pids[n] {
				return true
			}
		case harness.KindState:
			if leases[rest] {
				return true
			}
		}
		for _, p := range paths {
			if strings.Contains(rest, p+"/") || strings.HasSuffix(rest, p) {
				return true
			}
		}
		return false
	}
}

// vmGone is nil once pool VM vmid is gone: its directory and every
// process naming it.
func (w *warmFixture) vmGone(vmid string) error {
	dir := w.poolDir(vmid)
	if _, err := os.Lstat(dir); err == nil {
		return fmt.Errorf("%s still exists", dir)
	}
	if ps := processesNaming(dir); len(ps) > 0 {
		return fmt.Errorf("processes still name %s: %q", dir, ps)
	}
	return nil
}

// leaseLeft checks, once its VM is gone, that the jail uid lease file of
// a pool VM went too (unless a VM of the pool holds that uid again): a
// case's census cannot see it, the VM held it when the case began.
func (w *warmFixture) leaseLeft(lease string) error {
	if lease == "" {
		return nil
	}
	if _, err := os.Lstat(lease); errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	for _, d := range harness.PoolDirs(w.stateDir) {
		if w.leaseOf(d) == lease {
			return nil
		}
	}
	return fmt.Errorf("jail uid lease %s left", lease)
}

// poolCgroups lists the pool's parent cgroup directories
// (<cgroups.parent>/.pool in each hierarchy): the daemon makes them, and
// they must go with the last pool VM once the daemon is gone.
func (w *warmFixture) poolCgroups() []string {
	return cgroupDirs(path.Dir(sandbox.PoolCgroupPath(w.cfg, "x")))
}

// vmCgroups lists pool VM vmid's cgroup directories
// (<cgroups.parent>/.pool/<vmid> in each hierarchy).
func (w *warmFixture) vmCgroups(vmid string) []string {
	return cgroupDirs(sandbox.PoolCgroupPath(w.cfg, vmid))
}

// cgroupDirs lists the directories of cgroup path p in every hierarchy
// mounted under /sys/fs/cgroup (v1's controllers, or v2's unified one).
func cgroupDirs(p string) []string {
	m, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", p))
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", p)); err == nil {
		m = append(m, filepath.Join("/sys/fs/cgroup", p))
	}
	return m
}

// checkLeft fails t with each of errs and returns them for the row.
func checkLeft(t testing.TB, errs ...error) string {
	t.Helper()
	var out []string
	for _, err := range errs {
		if err != nil {
			t.Error(err)
			out = append(out, err.Error())
		}
	}
	if len(out) == 0 {
		return ""
	}
	return "; **" + strings.Join(out, "; ") + "**"
}

// cmdline is a process's command line, "" once it is gone.
func cmdline(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return ""
	}
	return strings.Join(strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"), " ")
}

// alive reports whether pid runs (a zombie has exited).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, after, ok := strings.Cut(string(b), ") ")
	return ok && !strings.HasPrefix(after, "Z")
}

// processesNaming lists "pid cmdline" of the processes whose command
// line contains s.
func processesNaming(s string) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if args := cmdline(pid); strings.Contains(args, s) && alive(pid) {
			out = append(out, e.Name()+" "+args)
		}
	}
	return out
}

// allStopped is nil once every thread of pid is stopped (state T).
func allStopped(pid int) error {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return err
	}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			return err
		}
		if _, after, _ := strings.Cut(string(b), ") "); !strings.HasPrefix(after, "T") {
			return fmt.Errorf("thread %s of %d is not stopped: %.40s", task.Name(), pid, after)
		}
	}
	return nil
}

// descendants lists the processes below pid.
func descendants(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parens.
		i := strings.LastIndexByte(string(b), ')')
		f := strings.Fields(string(b)[i+1:])
		if i < 0 || len(f) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil {
			children[ppid] = append(children[ppid], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		out = append(out, children[p]...)
		queue = append(queue, children[p]...)
	}
	return out
}

// TestWarmPoolCycles runs warm pods one after the other with a pool of
// two: each waits for the pool to be full, starts warm, runs a container
// that answers an exec, and is removed, taking its pool VM along. At the
// end the pool directories are the pool's ready VMs and nothing else is
// left.
func TestWarmPoolCycles(t *testing.T) {
	n := warmCycles()
	w := newWarmFixture(t, 2)
	cs := w.census()
	claims := w.s.Pool.Claims()
	var refills, runs, cycles []time.Duration
	for i := range n {
		start := time.Now()
		w.s.WaitPoolFull(t)
		refills = append(refills, time.Since(start))
		name := fmt.Sprintf("warm-%d", i)
		p := w.runWarm(t, name)
		runs = append(runs, p.run)
		cid := w.start(t, p.pod, "a", "exec sleep 100000")
		if out := w.mustExec(t, cid, "echo", name); strings.TrimSpace(out) != name {
			t.Fatalf("cycle %d: exec printed %q", i, out)
		}
		if i == 0 {
			cs.sample()
		}
		w.remove(t, p.pod)
		integration.Eventually(t, fmt.Sprintf("cycle %d: pool VM %s gone with its pod", i, p.vmid), settleBound, func() error {
			if l := harness.Leftovers(w.stateDir, p.id); len(l) > 0 {
				return fmt.Errorf("pod %s left %q", p.id, l)
			}
			return w.vmGone(p.vmid)
		})
		if err := w.leaseLeft(p.lease); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		cycles = append(cycles, time.Since(start))
	}
	w.s.WaitPoolFull(t)
	ready := w.checkPoolDirs(t)
	if got := w.s.Pool.Claims() - claims; got != n {
		t.Errorf("the daemon logged %d claims, want %d", got, n)
	}
	record(t, row{
		Outcome: fmt.Sprintf("%d warm run/exec/remove cycles, pool of 2: RunPodSandbox %s; cycle incl. waiting for the pool %s; refill waits %s",
			n, spread(runs), spread(cycles), spread(refills)),
		Recover: "-",
		Census:  cs.cleanExcept(t, "the pool's ready VMs", w.poolOwned(ready)),
	})
}

// warmKills are the processes of a warm pod killed by TestWarmKillKeeper:
// the claimed VM's keeper, the parent of its VM's processes, and the
// other end of its owner connection, the shim; under VEIL_TORTURE=full
// also the VM's own processes.
var warmKills = []struct {
	name, pidName string
	fullOnly      bool
}{
	{"keeper", "keeper", false},
	{"shim", "shim", false},
	{"qemu", "qemu", true},
	{"virtiofsd", "virtiofsd", true},
	{"vsock daemon", "vhost-vsock", true},
}

// TestWarmKillKeeper kills a process of a warm pod of two containers
// with SIGKILL, one per case, as TestKillHelperCRI does for a cold one:
// the CRI sees both containers exit within exitBound, stopp and rmp
// complete, the claimed pool VM is gone with every process of it, the
// pool is full again, and the leak census is clean.
func TestWarmKillKeeper(t *testing.T) {
	w := newWarmFixture(t, 2)
	for _, k := range warmKills {
		if k.fullOnly && !full() {
			continue // the cold suite kills these helpers in CI; the warm one under VEIL_TORTURE=full
		}
		t.Run(k.name, func(t *testing.T) {
			w.s.WaitPoolFull(t)
			cs := w.census()
			p := w.runWarm(t, "warm-kill-"+k.pidName)
			w.start(t, p.pod, "a", "echo a-up; exec sleep 100000")
			w.start(t, p.pod, "b", "echo b-up; exec sleep 100000")
			cs.sample()
			keeper := w.keeperPid(t, p.id)
			vm := append([]int{keeper}, descendants(keeper)...)
			pid := keeper
			if k.pidName != "keeper" {
				pid = w.helperPid(t, p.pod, k.pidName)
			}
			kill9(t, pid)
			took, sts := w.waitAllExited(t, p.pod, exitBound)
			rm := w.remove(t, p.pod)
			integration.Eventually(t, "the claimed VM gone", settleBound, func() error {
				for _, pid := range vm {
					if alive(pid) {
						return fmt.Errorf("process %d of the VM runs: %s", pid, cmdline(pid))
					}
				}
				return w.vmGone(p.vmid)
			})
			left := checkLeft(t, w.leaseLeft(p.lease))
			w.s.WaitPoolFull(t)
			ready := w.checkPoolDirs(t)
			record(t, row{
				Outcome: exits(sts) + "; stopp+rmp " + ms(rm) + left,
				Recover: ms(took),
				Census:  cs.cleanExcept(t, "the pool's ready VMs", w.poolOwned(ready)),
			})
		})
	}
}

// TestWarmKillDaemon kills the pool's daemon with SIGKILL while a warm
// pod runs on a claimed VM and one VM is idle: the idle VM's keeper
// removes it (its processes and directory are gone within
// idleGoneBound), the claimed pod's keeper stays and the pod still
// execs; removing the pod leaves nothing, not even a pool directory.
func TestWarmKillDaemon(t *testing.T) {
	w := newKillableFixture(t, 1)
	cs := w.census()
	p := w.runWarm(t, "daemon-killed")
	cid := w.start(t, p.pod, "a", "exec sleep 100000")
	w.s.WaitPoolFull(t)
	idle := w.readyVMs(t)
	if len(idle) != 1 {
		t.Fatalf("ready VMs %+v, want the one idle VM", idle)
	}
	if dirs := harness.PoolDirs(w.stateDir); len(dirs) != 2 {
		t.Fatalf("pool directories %q, want the claimed VM's and the idle one's", dirs)
	}
	idleProcs := append([]int{idle[0].KeeperPid}, descendants(idle[0].KeeperPid)...)
	if len(idleProcs) < 4 {
		t.Errorf("the idle VM's keeper %d has %d descendants, want its VMM, vsock daemon and virtiofsd", idle[0].KeeperPid, len(idleProcs)-1)
	}
	idleLease := w.leaseOf(w.poolDir(idle[0].ID))
	keeper := w.keeperPid(t, p.id)
	cs.sample()

	start := time.Now()
	w.killPool()
	integration.Eventually(t, "the idle VM gone after the daemon was killed", idleGoneBound, func() error {
		for _, pid := range idleProcs {
			if alive(pid) {
				return fmt.Errorf("process %d of the idle VM runs: %s", pid, cmdline(pid))
			}
		}
		return w.vmGone(idle[0].ID)
	})
	took := time.Since(start)
	if !alive(keeper) {
		t.Errorf("the claimed VM's keeper %d died with the daemon", keeper)
	}
	if out := w.mustExec(t, cid, "echo", "still-here"); strings.TrimSpace(out) != "still-here" {
		t.Fatalf("exec in the claimed pod after the daemon died: %q", out)
	}
	if dirs := harness.PoolDirs(w.stateDir); len(dirs) != 1 || filepath.Base(dirs[0]) != p.vmid {
		t.Errorf("pool directories %q, want only the claimed VM %s", dirs, p.vmid)
	}
	rm := w.remove(t, p.pod)
	integration.Eventually(t, "the claimed VM gone with its pod", settleBound, func() error {
		if alive(keeper) {
			return fmt.Errorf("keeper %d runs", keeper)
		}
		if err := w.vmGone(p.vmid); err != nil {
			return err
		}
		if ps := processesNaming(filepath.Join(w.stateDir, statedir.PoolDirName) + "/"); len(ps) > 0 {
			return fmt.Errorf("pool processes run: %q", ps)
		}
		if dirs := harness.PoolDirs(w.stateDir); len(dirs) > 0 {
			return fmt.Errorf("pool directories left: %q", dirs)
		}
		return nil
	})
	var cgs error
	if l := w.poolCgroups(); len(l) > 0 {
		cgs = fmt.Errorf("the pool's parent cgroup left with no pool VM and no daemon: %q", l)
	}
	left := checkLeft(t, w.leaseLeft(idleLease), w.leaseLeft(p.lease), cgs)
	record(t, row{
		Outcome: "idle VM removed by its keeper, claimed pod execs; stopp+rmp " + ms(rm) + left,
		Recover: ms(took) + " to the idle VM gone",
		Census:  cs.clean(t),
	})
}

// TestWarmKillService kills the pool's daemon and the keepers of its idle
// VMs with SIGKILL at once, as `systemctl kill -s KILL` does to the
// service (the daemon is stopped first, so it cannot remove what a dead
// keeper left): the VMs' processes die with their keepers, their
// directories, uid leases and cgroups stay, and the next daemon's sweep
// removes them before it boots a full pool again, which serves a warm
// pod.
func TestWarmKillService(t *testing.T) {
	w := newKillableFixture(t, 2)
	cs := w.census()
	idle := w.readyVMs(t)
	if len(idle) != 2 {
		t.Fatalf("ready VMs %+v, want 2", idle)
	}
	type oldVM struct {
		id, lease string
		procs     []int
	}
	var old []oldVM
	for _, v := range idle {
		procs := append([]int{v.KeeperPid}, descendants(v.KeeperPid)...)
		if len(procs) < 4 {
			t.Fatalf("keeper %d of %s has %d descendants, want its VMM, vsock daemon and virtiofsd", v.KeeperPid, v.ID, len(procs)-1)
		}
		old = append(old, oldVM{id: v.ID, lease: w.leaseOf(w.poolDir(v.ID)), procs: procs})
	}
	swept := w.s.Pool.Swept()

	start := time.Now()
	daemon := w.s.Pool.Pid()
	if err := syscall.Kill(daemon, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(daemon, syscall.SIGCONT) }) // should the case end before the kill
	// Every thread stopped: none can reap a keeper and remove its VM.
	integration.Eventually(t, "the daemon stopped", settleBound, func() error { return allStopped(daemon) })
	for _, v := range old {
		kill9(t, v.procs[0])
	}
	w.killPool()
	integration.Eventually(t, "the killed keepers' VM processes gone", settleBound, func() error {
		for _, v := range old {
			for _, pid := range v.procs {
				if alive(pid) {
					return fmt.Errorf("process %d of pool VM %s runs: %s", pid, v.id, cmdline(pid))
				}
			}
		}
		return nil
	})
	// What the sweep must remove is there.
	for _, v := range old {
		if _, err := os.Lstat(w.poolDir(v.id)); err != nil {
			t.Fatalf("pool VM %s's directory gone before a daemon swept it (%v): the case no longer reaches the sweep", v.id, err)
		}
		if w.cfg.Jail.Enabled && v.lease == "" {
			t.Fatalf("pool VM %s has no jail uid lease with the jail on", v.id)
		}
		if _, err := os.Lstat(v.lease); v.lease != "" && err != nil {
			t.Fatalf("pool VM %s's uid lease gone before a daemon swept it: %v", v.id, err)
		}
		if w.cfg.Cgroups.Enabled && len(w.vmCgroups(v.id)) == 0 {
			t.Fatalf("pool VM %s's cgroup gone before a daemon swept it", v.id)
		}
	}

	w.restartPool(t)
	took := time.Since(start)
	var errs []error
	for _, v := range old {
		errs = append(errs, w.vmGone(v.id), w.leaseLeft(v.lease))
		if cg := w.vmCgroups(v.id); len(cg) > 0 {
			errs = append(errs, fmt.Errorf("pool VM %s's cgroups left: %q", v.id, cg))
		}
	}
	if got := w.s.Pool.Swept() - swept; got != len(old) {
		errs = append(errs, fmt.Errorf("the new daemon swept %d VMs, want %d", got, len(old)))
	}
	w.checkPoolDirs(t)
	p := w.runWarm(t, "after-service-killed")
	cid := w.start(t, p.pod, "a", "exec sleep 100000")
	if out := w.mustExec(t, cid, "echo", "warm-again"); strings.TrimSpace(out) != "warm-again" {
		t.Fatalf("exec in a warm pod after the restart: %q", out)
	}
	rm := w.remove(t, p.pod)
	integration.Eventually(t, "the claimed VM gone with its pod", settleBound, func() error { return w.vmGone(p.vmid) })
	errs = append(errs, w.leaseLeft(p.lease))
	w.s.WaitPoolFull(t)
	ready := w.checkPoolDirs(t)
	left := checkLeft(t, errs...)
	// The new daemon replaced the killed one, which the base counted.
	vms, newDaemon := w.poolOwned(ready), harness.KindProcess+": "+strconv.Itoa(w.s.Pool.Pid())+" "
	owned := func(item string) bool { return vms(item) || strings.HasPrefix(item, newDaemon) }
	record(t, row{
		Outcome: "idle VMs' processes died with their keepers; the next daemon swept their directories, leases and cgroups and refilled; a warm pod ran; stopp+rmp " + ms(rm) + left,
		Recover: ms(took) + " to a full pool again",
		Census:  cs.cleanExcept(t, "the pool's daemon and ready VMs", owned),
	})
}
