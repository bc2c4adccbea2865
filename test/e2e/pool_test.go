package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/statedir"
	"github.com/veil-runtime/veil/test/harness"
	"github.com/veil-runtime/veil/test/integration"
)

// TestWarmPool checks what the warm pool promises beyond "a warm pod
// behaves as a cold one" (TestCtrWarm): VMs that never met are not
// clones, a pod whose configuration differs starts cold, and the pool's
// daemon killed with SIGKILL takes its idle VMs along, leaves claimed
// pods running, and starts again cleanly.
func TestWarmPool(t *testing.T) {
	e := setupWarm(t, 2, 0)
	t.Run("clones differ", func(t *testing.T) { testClonesDiffer(t, e) })
	t.Run("claimed VM broken", func(t *testing.T) { testClaimedVMBroken(t, e) })
	t.Run("daemon killed", func(t *testing.T) { testDaemonKilled(t, e) })
}

// guestIdentity is what a guest must never share with another: its
// boot id and its random numbers.
func guestIdentity(t *testing.T, e *env, id string) (bootID, random string) {
	t.Helper()
	r := mustCtr(t, e.c, "task", "exec", "--exec-id", "id", id, "sh", "-c",
		"cat /proc/sys/kernel/random/boot_id; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo; date +%s")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("guest identity of %s: %q", id, r.stdout)
	}
	guest, err := strconv.ParseInt(lines[2], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Now().Unix() - guest; d > 2 || d < -2 {
		t.Errorf("%s: the guest's clock is %d s off the host's", id, d)
	}
	return lines[0], lines[1]
}

// testClonesDiffer: two pods claimed from the pool and one started cold
// (its memory size differs from the pool's, by annotation) have three
// boot ids and three streams of random numbers; the warm ones ran the
// pool's warm-up, which left nothing in their guests.
func testClonesDiffer(t *testing.T, e *env) {
	e.waitPoolFull(t)
	ids := []string{"warm-a", "warm-b", "cold-c"}
	for _, id := range ids {
		t.Cleanup(func() { forceRemove(t, e, id) })
	}
	// 4 MiB more than the pool's VMs: no VM of the pool fits.
	cfg, err := config.Load(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	memory := "io.veil.config.guest.memory_mib=" + strconv.Itoa(int(cfg.Guest.MemoryMiB)+4)
	mustCtr(t, e.c, runArgs([]string{"-d"}, ids[0], "sleep", "1000")...)
	mustCtr(t, e.c, runArgs([]string{"-d"}, ids[1], "sleep", "1000")...)
	mustCtr(t, e.c, runArgs([]string{"-d", "--annotation", memory}, ids[2], "sleep", "1000")...)
	for i, id := range ids {
		warm, err := harness.IsWarm(e.stateDir, id)
		if err != nil {
			t.Fatal(err)
		}
		if want := i < 2; warm != want {
			t.Errorf("%s started warm: %v, want %v", id, warm, want)
		}
	}
	boots, randoms := map[string]string{}, map[string]string{}
	for _, id := range ids {
		b, r := guestIdentity(t, e, id)
		if other, ok := boots[b]; ok {
			t.Errorf("%s and %s share boot id %s", id, other, b)
		}
		if other, ok := randoms[r]; ok {
			t.Errorf("%s and %s read the same random bytes %s", id, other, r)
		}
		boots[b], randoms[r] = id, id
	}
	// The pool VMs warmed up (a throwaway pod started and removed)
	// before they were claimed, and the warm-up left nothing.
	for _, id := range ids[:2] {
		log, err := os.ReadFile(filepath.Join(e.stateDir, id, statedir.ConsoleLog))
		if err != nil || !strings.Contains(string(log), "guest warmed up") {
			t.Errorf("%s: no warm-up in the console log (%v)", id, err)
		}
		left := guestExec(t, e, id, `for p in /run/veil/warmup /sys/fs/cgroup/veil-warmup; do test -e $p && echo "left: $p"; done; ps | grep '[v]eil-pod-holder'; true`)
		if left != "" {
			t.Errorf("%s: the warm-up left %q", id, left)
		}
	}
	for _, id := range ids {
		mustCtr(t, e.c, "task", "delete", "--force", id)
		mustCtr(t, e.c, "containers", "delete", id)
		checkNoLeftovers(t, e.stateDir, id)
	}
}

// testClaimedVMBroken: every idle VM's QEMU is stopped (SIGSTOP: its
// keeper cannot tell, QMP does not answer), so the claimed VM fails its
// adoption: the shim removes it with every process of it, starts the
// pod cold, and the pool refills.
func testClaimedVMBroken(t *testing.T, e *env) {
	e.waitPoolFull(t)
	const id = "broken-claim"
	t.Cleanup(func() { forceRemove(t, e, id) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := e.pool.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Those the claim did not take go back to work, also on failure.
	stopped := map[string]int{}
	t.Cleanup(func() {
		for _, pid := range stopped {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	})
	for _, v := range st.VMs {
		pid := harness.HelperPid(t, e.stateDir, filepath.Join(statedir.PoolDirName, v.ID), "qemu")
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		stopped[v.ID] = pid
	}
	// The shim's line for an adoption that failed because QEMU did not
	// answer (the step is in the error: "sandbox <id>: adopt VM: ...").
	failedAdoptions := func() int {
		b, _ := os.ReadFile(e.c.LogPath)
		n := 0
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, `msg="warm pool: the claimed VM failed; cold start"`) && strings.Contains(l, id+": adopt VM: ") {
				n++
			}
		}
		return n
	}
	failed := failedAdoptions()
	claims := e.pool.Claims()

	mustCtr(t, e.c, runArgs([]string{"-d"}, id, "sleep", "1000")...)
	if warm, err := harness.IsWarm(e.stateDir, id); err != nil || warm {
		t.Errorf("%s started warm (%v), want cold after its claimed VM failed", id, err)
	}
	if got := e.pool.Claims() - claims; got != 1 {
		t.Errorf("the daemon logged %d claims, want 1", got)
	}
	if got := failedAdoptions() - failed; got != 1 {
		t.Errorf("the shim logged %d adoptions that failed at \"adopt VM\", want 1", got)
	}
	r := mustCtr(t, e.c, "task", "exec", "--exec-id", "cold", id, "echo", "cold-after-broken")
	if strings.TrimSpace(r.stdout) != "cold-after-broken" {
		t.Fatalf("exec in the cold pod: %s", r)
	}
	// The claimed VM is gone with every process of it.
	for vmid, pid := range stopped {
		if _, err := os.Lstat(filepath.Join(e.stateDir, statedir.PoolDirName, vmid)); err == nil {
			continue
		}
		integration.Eventually(t, "the failed VM's processes gone", 30*time.Second, func() error {
			if ps := poolProcesses(t, e.stateDir); slices.ContainsFunc(ps, func(p string) bool { return strings.Contains(p, vmid) }) {
				return fmt.Errorf("processes of %s run: %q", vmid, ps)
			}
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(b), ") Z ") {
				return fmt.Errorf("its qemu %d runs", pid)
			}
			return nil
		})
		delete(stopped, vmid)
	}
	if len(stopped) != len(st.VMs)-1 {
		t.Errorf("%d of the %d stopped VMs gone, want the claimed one", len(st.VMs)-len(stopped), len(st.VMs))
	}
	for _, pid := range stopped {
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Error(err)
		}
	}
	stopped = nil
	mustCtr(t, e.c, "task", "delete", "--force", id)
	mustCtr(t, e.c, "containers", "delete", id)
	checkNoLeftovers(t, e.stateDir, id)
	before := e.waitPoolFull(t)
	// The pool serves again.
	const next = "after-broken"
	mustCtr(t, e.c, runArgs([]string{"--rm"}, next, "true")...)
	e.checkClaimed(t, before)
	checkNoLeftovers(t, e.stateDir, next)
}

// testDaemonKilled: SIGKILL to the daemon with two idle VMs and one
// claimed: the idle VMs' keepers remove them, the claimed pod keeps
// running; meanwhile pods start cold; a new daemon starts on what is
// left and fills the pool again.
func testDaemonKilled(t *testing.T, e *env) {
	e.waitPoolFull(t)
	const claimed, cold = "claimed-pod", "cold-pod"
	t.Cleanup(func() { forceRemove(t, e, claimed); forceRemove(t, e, cold) })
	mustCtr(t, e.c, runArgs([]string{"-d"}, claimed, "sleep", "1000")...)
	if warm, err := harness.IsWarm(e.stateDir, claimed); err != nil || !warm {
		t.Fatalf("%s did not start warm (%v)", claimed, err)
	}
	e.waitPoolFull(t)
	idle := harness.PoolDirs(e.stateDir)
	if len(idle) != 3 {
		t.Fatalf("pool directories %q, want 2 idle and the claimed one", idle)
	}
	e.pool.Kill()

	integration.Eventually(t, "idle VMs gone after the daemon was killed", 60*time.Second, func() error {
		if left := harness.PoolDirs(e.stateDir); len(left) != 1 {
			return fmt.Errorf("pool directories %q, want only the claimed pod's", left)
		}
		var keepers []string
		for _, p := range poolProcesses(t, e.stateDir) {
			if strings.Contains(p, " pool keep ") {
				keepers = append(keepers, p)
			}
		}
		if len(keepers) != 1 {
			return fmt.Errorf("pool keepers %q, want the claimed VM's only", keepers)
		}
		return nil
	})
	r := mustCtr(t, e.c, "task", "exec", "--exec-id", "alive", claimed, "echo", "still-here")
	if strings.TrimSpace(r.stdout) != "still-here" {
		t.Fatalf("the claimed pod after the daemon died: %s", r)
	}
	// No daemon: pods start cold.
	r = mustCtr(t, e.c, runArgs([]string{"--rm"}, cold, "echo", "cold")...)
	if strings.TrimSpace(r.stdout) != "cold" {
		t.Fatalf("cold start without a daemon: %s", r)
	}
	checkNoLeftovers(t, e.stateDir, cold)

	// A new daemon starts on what is left and fills the pool.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := harness.StartPool(ctx, e.cfgPath, e.pool.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	e.pool = p // setupWarm's cleanup stops this one
	if err := p.Wait(ctx, 2); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, filepath.Join(integration.OutputDir(), "bin", "veil"), "--config", e.cfgPath, "pool", "ls").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "2 of 2 ready") {
		t.Errorf("veil pool ls: %v\n%s", err, out)
	}
	mustCtr(t, e.c, "task", "delete", "--force", claimed)
	mustCtr(t, e.c, "containers", "delete", claimed)
	checkNoLeftovers(t, e.stateDir, claimed)
	if left := harness.PoolDirs(e.stateDir); len(left) != 2 {
		t.Errorf("pool directories %q after the claimed pod left, want the 2 idle VMs", left)
	}
}

// poolProcesses lists the host processes whose command line names a
// pool VM directory.
func poolProcesses(t *testing.T, stateDir string) []string {
	t.Helper()
	out, err := exec.Command("pgrep", "-af", filepath.Join(stateDir, ".pool")+"/").Output()
	if err != nil && len(out) > 0 {
		t.Fatal(err)
	}
	var procs []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" && !strings.Contains(l, "pgrep") {
			procs = append(procs, l)
		}
	}
	return procs
}
