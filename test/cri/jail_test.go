package cri

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/veil-runtime/veil/runtime/cgroup"
	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/statedir"
	"github.com/veil-runtime/veil/test/harness"
)

// Helper names, as their pid files in the sandbox directory name them.
const (
	helperQEMU      = "qemu"
	helperVsock     = "vhost-vsock"
	helperVirtiofsd = "virtiofsd"
)

// privilegedPod is a pod config whose containers may be privileged, below
// cgroup parent.
func (f *fixture) privilegedPod(name, parent string) *runtimeapi.PodSandboxConfig {
	cfg := f.podConfig(name)
	cfg.Linux.CgroupParent = parent
	cfg.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{Privileged: true}
	return cfg
}

// removeCgroupWhenDone removes a test's cgroup parent after its pods
// (cleanups run in reverse order).
func removeCgroupWhenDone(t testing.TB, parent string) {
	t.Cleanup(func() {
		for p := parent; p != "/" && p != "."; p = filepath.Dir(p) {
			if cg, err := cgroup.Load(p); err == nil {
				_ = cg.Delete(context.Background())
			}
		}
	})
}

// privileged is a privileged busybox container running script.
func privileged(name, script string) *runtimeapi.ContainerConfig {
	c := shContainer(name, script)
	c.Linux.SecurityContext = &runtimeapi.LinuxContainerSecurityContext{Privileged: true}
	return c
}

// procStatus parses /proc/<pid>/status.
func procStatus(t testing.TB, pid int) map[string]string {
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

func procFile(t testing.TB, pid int, name string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// childOf returns pid's only child.
func childOf(t testing.TB, pid int) int {
	t.Helper()
	kids := strings.Fields(procFile(t, pid, fmt.Sprintf("task/%d/children", pid)))
	if len(kids) != 1 {
		t.Fatalf("pid %d has children %v, want one", pid, kids)
	}
	c, _ := strconv.Atoi(kids[0])
	return c
}

// hardNofile is this process's hard RLIMIT_NOFILE (the shim's, as both
// descend from the harness).
func hardNofile(t testing.TB) uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	return rl.Max
}

func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// TestJailedHelpers reads /proc for every helper of a running pod: QEMU
// and vhost-device-vsock run as the sandbox's own unprivileged uid with
// no_new_privs, in their own root and mount namespace (QEMU also under
// its seccomp filter); every helper sits in the sandbox cgroup below
// the pod's cgroup parent, with the pod's oom_score_adj and bounded
// rlimits; a second pod's QEMU has another uid.
func TestJailedHelpers(t *testing.T) { modes(t, testJailedHelpers) }

func testJailedHelpers(t *testing.T, f *fixture) {
	cfg := f.shared.Config
	parent := "/veil-test-pods/jailed-" + strconv.Itoa(os.Getpid())
	removeCgroupWhenDone(t, parent)
	podCfg := f.privilegedPod("jailed", parent)
	pod := f.runPod(t, harness.HandlerVeil, podCfg)
	c := shContainer("app", "sleep 1000")
	c.Linux.Resources.OomScoreAdj = 500
	f.startContainer(t, pod, podCfg, c)

	other := f.runPod(t, harness.HandlerVeil, f.podConfig("other"))

	wantCgroup := parent + "/" + pod
	fsize := max(cfg.Jail.RlimitFsizeMiB, uint64(cfg.Guest.MemoryMiB)+uint64(cfg.Guest.HotplugMemoryMiB)) << 20
	uid := ""
	for _, h := range []string{helperQEMU, helperVsock, helperVirtiofsd} {
		pid := harness.HelperPid(t, f.stateDir, pod, h)
		if h == helperVirtiofsd {
			// virtiofsd's serving process is its child, PID 1 of the
			// namespaces it sandboxes itself in; the started one waits.
			pid = childOf(t, pid)
		}
		st := procStatus(t, pid)
		t.Logf("%s (pid %d): Uid %s | Gid %s | Groups %q | NoNewPrivs %s | Seccomp %s | CapEff %s | CapBnd %s | NSpid %s",
			h, pid, st["Uid"], st["Gid"], st["Groups"], st["NoNewPrivs"], st["Seccomp"], st["CapEff"], st["CapBnd"], st["NSpid"])
		if st["NoNewPrivs"] != "1" {
			t.Errorf("%s: NoNewPrivs %q", h, st["NoNewPrivs"])
		}
		if h == helperQEMU || h == helperVirtiofsd {
			if st["Seccomp"] != "2" {
				t.Errorf("%s: Seccomp %q, want 2 (filter)", h, st["Seccomp"])
			}
		}
		if h == helperVirtiofsd {
			// chown, dac_override, fowner, fsetid, setgid, setuid: no
			// mknod, no setfcap.
			if st["CapEff"] != "00000000000000db" || st["CapBnd"] != "0000000000000000" {
				t.Errorf("virtiofsd: CapEff %s CapBnd %s, want 00000000000000db and none", st["CapEff"], st["CapBnd"])
			}
			if limits := procFile(t, pid, "limits"); !strings.Contains(limits, fmt.Sprintf("Max open files            %-21d", min(cfg.Virtiofs.RlimitNofile, hardNofile(t)))) {
				t.Errorf("virtiofsd: open files not bounded by virtiofs.rlimit_nofile:\n%s", limits)
			}
		}
		if h != helperVirtiofsd {
			ids := strings.Fields(st["Uid"])
			if len(ids) != 4 || ids[0] == "0" || ids[0] != ids[1] || ids[0] != ids[3] || st["Gid"] != st["Uid"] {
				t.Errorf("%s: Uid %q Gid %q, want one unprivileged id", h, st["Uid"], st["Gid"])
			}
			if uid == "" {
				uid = ids[0]
			} else if ids[0] != uid {
				t.Errorf("%s: uid %s, the sandbox's is %s", h, ids[0], uid)
			}
			if st["CapEff"] != "0000000000000000" || st["CapBnd"] != "0000000000000000" {
				t.Errorf("%s: CapEff %s CapBnd %s, want none", h, st["CapEff"], st["CapBnd"])
			}
			for _, ns := range []string{"mnt", "pid", "ipc", "net"} {
				self := "/proc/self/ns/" + ns
				if sameFile(fmt.Sprintf("/proc/%d/ns/%s", pid, ns), self) {
					t.Errorf("%s: in the host's %s namespace", h, ns)
				}
			}
			if sameFile(fmt.Sprintf("/proc/%d/root/", pid), "/") {
				t.Errorf("%s: root directory is the host's", h)
			}
			limits := procFile(t, pid, "limits")
			for _, want := range []string{
				fmt.Sprintf("Max open files            %-21d%-21d", cfg.Jail.RlimitNofile, cfg.Jail.RlimitNofile),
				fmt.Sprintf("Max file size             %-21d%-21d", fsize, fsize),
			} {
				if !strings.Contains(limits, want) {
					t.Errorf("%s: limits lack %q:\n%s", h, want, limits)
				}
			}
		}
		if adj := strings.TrimSpace(procFile(t, pid, "oom_score_adj")); adj != "500" {
			t.Errorf("%s: oom_score_adj %s, want the pod's 500", h, adj)
		}
		for _, l := range strings.Split(procFile(t, pid, "cgroup"), "\n") {
			// hierarchy-id:controllers:path, for the controllers that limit.
			parts := strings.SplitN(l, ":", 3)
			if len(parts) == 3 && (parts[1] == "memory" || parts[1] == "pids" || parts[1] == "cpu" || parts[1] == "") && parts[2] != wantCgroup {
				t.Errorf("%s: cgroup %q, want %s", h, l, wantCgroup)
			}
		}
	}
	otherUID := strings.Fields(procStatus(t, harness.HelperPid(t, f.stateDir, other, helperQEMU))["Uid"])[0]
	if otherUID == uid || otherUID == "0" {
		t.Errorf("two pods' QEMUs run as uid %s and %s", uid, otherUID)
	}
}

// sandboxCgroup loads the pod's sandbox cgroup.
func sandboxCgroup(t testing.TB, path string) *cgroup.Cgroup {
	t.Helper()
	cg, err := cgroup.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cg
}

// TestSandboxCgroupCharges: a guest that touches its RAM is charged to
// the sandbox cgroup, within its limit; a guest that onlines its reserve
// vCPU and keeps two busy stays within the quota of the one vCPU the
// host gave it.
//
// Warm, the VM's boot memory stays charged where it was (the pool's
// cgroup, then its parent): what the guest touches after the claim is
// the pod's.
func TestSandboxCgroupCharges(t *testing.T) {
	modes(t, testSandboxCgroupCharges, func(c *config.Config) { c.Guest.MaxVCPUs = 2 })
}

func testSandboxCgroupCharges(t *testing.T, f *fixture) {
	cfg := f.shared.Config
	parent := "/veil-test-pods/charges-" + strconv.Itoa(os.Getpid())
	removeCgroupWhenDone(t, parent)
	podCfg := f.privilegedPod("charges", parent)
	pod := f.runPod(t, harness.HandlerVeil, podCfg)
	c := f.startContainer(t, pod, podCfg, privileged("hog", "sleep 1000"))
	cg := sandboxCgroup(t, parent+"/"+pod)

	limit := readInt(t, cg.FilePath("memory", "memory.limit_in_bytes"), cg.FilePath("", "memory.max"))
	if want := int64(cfg.Guest.MemoryMiB+cfg.Cgroups.MemoryOverheadMiB) << 20; limit != want {
		t.Errorf("memory limit %d, want guest RAM + overhead %d", limit, want)
	}
	before, err := cg.Stats()
	if err != nil {
		t.Fatal(err)
	}
	const touchMiB = 160
	f.mustExec(t, c, "sh", "-c", fmt.Sprintf("mkdir -p /mnt/ram && mount -t tmpfs -o size=%dm tmpfs /mnt/ram && dd if=/dev/zero of=/mnt/ram/fill bs=1M count=%d 2>&1", touchMiB+8, touchMiB))
	after, err := cg.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sandbox cgroup memory: %d MiB before, %d MiB after the guest touched %d MiB (limit %d MiB)", before.MemoryBytes>>20, after.MemoryBytes>>20, touchMiB, limit>>20)
	if after.MemoryBytes < before.MemoryBytes+(touchMiB-16)<<20 {
		t.Errorf("guest RAM not charged to the sandbox cgroup: %d -> %d bytes", before.MemoryBytes, after.MemoryBytes)
	}

	// The guest onlines its reserve vCPU itself and keeps two busy.
	f.mustExec(t, c, "sh", "-c", "echo 1 > /sys/devices/system/cpu/cpu1/online && cat /sys/devices/system/cpu/online")
	s0, err := cg.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	f.mustExec(t, c, "sh", "-c", "for i in 1 2; do timeout 5 sh -c 'while :; do :; done' & done; wait; true")
	s1, err := cg.Stats()
	if err != nil {
		t.Fatal(err)
	}
	used := float64(s1.CPUNanos-s0.CPUNanos) / float64(time.Since(t0).Nanoseconds())
	t.Logf("two busy guest vCPUs used %.2f host CPUs; throttled %d of %d periods", used, s1.NrThrottled-s0.NrThrottled, s1.NrPeriods-s0.NrPeriods)
	if used > float64(cfg.Guest.VCPUs)*1.2 {
		t.Errorf("the VM used %.2f CPUs, above its quota of %d", used, cfg.Guest.VCPUs)
	}
	if s1.NrThrottled == s0.NrThrottled {
		t.Errorf("the sandbox cgroup was never throttled")
	}
}

// readInt reads the first of paths that exists as an integer.
func readInt(t testing.TB, paths ...string) int64 {
	t.Helper()
	for _, p := range paths {
		if p == "" {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		return v
	}
	t.Fatalf("none of %v readable", paths)
	return 0
}

// TestConsoleFlood: a privileged container writes to the guest's serial
// console for 20 s; the host keeps at most console.max_bytes of it, and
// the shim answers meanwhile.
func TestConsoleFlood(t *testing.T) {
	// A cap the flood surely passes under TCG (the serial port takes
	// some 50 KB/s there), so that rotation happens.
	var cfg *config.Config
	f := newFixture(t, func(c *config.Config) { c.Console.MaxBytes = 64 << 10; cfg = c })
	podCfg := f.privilegedPod("flood", "")
	pod := f.runPod(t, harness.HandlerVeil, podCfg)
	c := f.startContainer(t, pod, podCfg, privileged("flood", "timeout 20 sh -c 'while :; do echo flood-flood-flood-flood-flood-flood-flood; done > /dev/ttyS0'; sleep 1000"))
	start := time.Now()
	var slowest time.Duration
	for time.Since(start) < 20*time.Second {
		t0 := time.Now()
		if out := f.mustExec(t, c, "echo", "alive"); out != "alive\n" {
			t.Fatalf("exec during the flood: %q", out)
		}
		slowest = max(slowest, time.Since(t0))
	}
	log := filepath.Join(f.stateDir, pod, statedir.ConsoleLog)
	var total int64
	for _, p := range []string{log, log + ".1"} {
		if st, err := os.Stat(p); err == nil {
			total += st.Size()
		}
	}
	kept, _ := os.ReadFile(log)
	t.Logf("console kept on the host: %d bytes (cap %d); slowest exec during the flood %s", total, cfg.Console.MaxBytes, slowest)
	if kept, _ := os.ReadFile(log + ".1"); !bytes.Contains(kept, []byte("flood-flood")) {
		t.Errorf("the rotated console holds no flood")
	}
	if total > cfg.Console.MaxBytes {
		t.Errorf("the host keeps %d bytes of console, above the %d cap", total, cfg.Console.MaxBytes)
	}
	if _, err := os.Stat(log + ".1"); err != nil || !bytes.Contains(kept, []byte("flood-flood")) {
		t.Errorf("the flood did not reach the host's console copy (rotated: %v)", err)
	}
}
