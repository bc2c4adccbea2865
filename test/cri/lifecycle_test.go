package cri

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/test/harness"
	"github.com/veil-runtime/veil/test/integration"
)

// TestPodLifecycle runs one veil pod through containerd's CRI plugin and
// checks the CRI behaviours on it, in order: the VM is the pod's, its
// containers share it, and everything goes when the pod is removed.
func TestPodLifecycle(t *testing.T) {
	// A spare vCPU for the hotplug case (QEMU holds it offline).
	modes(t, testPodLifecycle, func(c *config.Config) { c.Guest.MaxVCPUs = c.Guest.VCPUs + 1 })
}

func testPodLifecycle(t *testing.T, f *fixture) {
	podCfg := f.podConfig("lifecycle")
	podCfg.DnsConfig = &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"veil-test.svc.cluster.local"}, Options: []string{"ndots:5"}}
	// A pod-wide IPC sysctl and a process namespace its containers may
	// share (shareProcessNamespace), both the pod holder's to keep.
	if podCfg.Linux == nil {
		podCfg.Linux = &runtimeapi.LinuxPodSandboxConfig{}
	}
	if podCfg.Linux.SecurityContext == nil {
		podCfg.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{}
	}
	podCfg.Linux.SecurityContext.NamespaceOptions = &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD}
	podCfg.Linux.Sysctls = map[string]string{"kernel.shm_rmid_forced": "1"}
	pod := f.runPod(t, harness.HandlerVeil, podCfg)

	main := shContainer("main", `echo started; trap 'echo got TERM; exit 0' TERM; while true; do sleep 1; done`)
	mainID := f.startContainer(t, pod, podCfg, main)
	mainLog := LogPath(podCfg, main)

	var host unix.Utsname
	if err := unix.Uname(&host); err != nil {
		t.Fatal(err)
	}
	hostRelease := unix.ByteSliceToString(host.Release[:])

	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"logs", func(t *testing.T) {
			integration.Eventually(t, "log has 'started'", 30*time.Second, func() error { return logHas(mainLog, "started\n") })
		}},
		{"exec runs in the guest kernel", func(t *testing.T) {
			got := strings.TrimSpace(f.mustExec(t, mainID, "uname", "-r"))
			if got == "" || got == hostRelease {
				t.Fatalf("uname -r in the pod = %q, host = %q", got, hostRelease)
			}
		}},
		{"exec exit code and stderr", func(t *testing.T) {
			_, errOut, code := f.execSync(t, mainID, "sh", "-c", "echo oops >&2; exit 3")
			if code != 3 || errOut != "oops\n" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
		}},
		{"hostname follows the pod", func(t *testing.T) {
			if got := strings.TrimSpace(f.mustExec(t, mainID, "hostname")); got != podCfg.Hostname {
				t.Fatalf("hostname %q, want %q", got, podCfg.Hostname)
			}
		}},
		{"resolv.conf follows the pod's DNS config", func(t *testing.T) {
			got := f.mustExec(t, mainID, "cat", "/etc/resolv.conf")
			for _, want := range []string{"nameserver 10.96.0.10", "search veil-test.svc.cluster.local", "options ndots:5"} {
				if !strings.Contains(got, want) {
					t.Fatalf("resolv.conf %q lacks %q", got, want)
				}
			}
		}},
		{"hosts file", func(t *testing.T) {
			if got := f.mustExec(t, mainID, "cat", "/etc/hosts"); !strings.Contains(got, "localhost") {
				t.Fatalf("/etc/hosts %q", got)
			}
		}},
		{"containers share the pod's VM, IPC and UTS", func(t *testing.T) {
			side := f.startContainer(t, pod, podCfg, shContainer("side", `while true; do sleep 1; done`))
			read := func(id, path string) string { return strings.TrimSpace(f.mustExec(t, id, "readlink", path)) }
			for _, p := range []string{"/proc/self/ns/ipc", "/proc/self/ns/uts"} {
				if a, b := read(mainID, p), read(side, p); a != b {
					t.Fatalf("%s differs: %s vs %s: the pod's namespace is not shared", p, a, b)
				}
			}
			// Not the guest's own namespaces: the pod's (its pause container's).
			if a, b := read(mainID, "/proc/self/ns/mnt"), read(side, "/proc/self/ns/mnt"); a == b {
				t.Fatalf("mount namespaces are shared: %s", a)
			}
			boot := func(id string) string { return f.mustExec(t, id, "cat", "/proc/sys/kernel/random/boot_id") }
			if a, b := boot(mainID), boot(side); a != b {
				t.Fatalf("boot ids differ: %q vs %q: not one VM", a, b)
			}
			if got := strings.TrimSpace(f.mustExec(t, side, "hostname")); got != podCfg.Hostname {
				t.Fatalf("side hostname %q", got)
			}
		}},
		{"the agent's pod holder keeps the pod's namespaces", func(t *testing.T) {
			// A container sharing the pod's process namespace sees the
			// holder as PID 1: the agent's process, not the pause image's,
			// as 65535 without capabilities; the pod's IPC sysctl is set.
			peek := shContainer("peek", `while true; do sleep 1; done`)
			peek.Linux.SecurityContext = &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD}}
			id := f.startContainer(t, pod, podCfg, peek)
			if got := f.mustExec(t, id, "cat", "/proc/1/cmdline"); got != "veil-pod-holder\x00" {
				t.Errorf("PID 1 of the pod: %q, want the pod holder", got)
			}
			st := f.mustExec(t, id, "cat", "/proc/1/status")
			for _, want := range []string{"Uid:\t65535\t65535\t65535\t65535", "CapEff:\t0000000000000000"} {
				if !strings.Contains(st, want) {
					t.Errorf("holder status lacks %q:\n%s", want, st)
				}
			}
			// It runs in the sandbox container's cgroup (it starts in it),
			// whose path ends in the sandbox's id.
			if cg := strings.TrimSpace(f.mustExec(t, id, "cat", "/proc/1/cgroup")); !strings.HasPrefix(cg, "0::/") || !strings.HasSuffix(cg, "/"+pod) {
				t.Errorf("the holder's cgroup %q, want the sandbox container's (…/%s)", cg, pod)
			}
			// Its root (an empty tmpfs) is out of reach: it is not dumpable.
			if out, _, code := f.execSync(t, id, "ls", "/proc/1/root/"); code == 0 {
				t.Errorf("the holder's root is readable from the pod: %q", out)
			}
			if got := strings.TrimSpace(f.mustExec(t, id, "cat", "/proc/sys/kernel/shm_rmid_forced")); got != "1" {
				t.Errorf("kernel.shm_rmid_forced %q, want 1", got)
			}
		}},
		{"streaming exec with a terminal of the client's size", func(t *testing.T) {
			// crictl streams through containerd's CRI streaming server and
			// sends its terminal's size; script(1) gives it a terminal.
			cmdline := fmt.Sprintf("stty rows 33 cols 77; crictl --runtime-endpoint %s exec -it %s stty size", f.c.CRIEndpoint(), mainID)
			ctx, cancel := context.WithTimeout(f.ctx, time.Minute)
			defer cancel()
			out, err := f.c.Command(ctx, "script", "-qec", cmdline, "/dev/null").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "33 77") {
				t.Fatalf("crictl exec -it: %v; output %q, want the terminal size 33 77", err, out)
			}
		}},
		{"stats from the guest cgroups", func(t *testing.T) {
			ctx := f.ctx
			resp, err := f.cl.Runtime.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{ContainerId: mainID})
			if err != nil {
				t.Fatal(err)
			}
			st := resp.Stats
			if st.GetMemory().GetWorkingSetBytes().GetValue() == 0 || st.GetCpu().GetUsageCoreNanoSeconds().GetValue() == 0 {
				t.Fatalf("stats %v", st)
			}
			list, err := f.cl.Runtime.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{Filter: &runtimeapi.ContainerStatsFilter{PodSandboxId: pod}})
			if err != nil {
				t.Fatal(err)
			}
			if len(list.Stats) < 1 {
				t.Fatalf("ListContainerStats: %v", list.Stats)
			}
		}},
		{"update resources reaches the guest cgroup", func(t *testing.T) {
			_, err := f.cl.Runtime.UpdateContainerResources(f.ctx, &runtimeapi.UpdateContainerResourcesRequest{
				ContainerId: mainID,
				Linux:       &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 96 << 20, CpuPeriod: 100000, CpuQuota: 50000},
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(f.mustExec(t, mainID, "cat", "/sys/fs/cgroup/memory.max")); got != fmt.Sprint(96<<20) {
				t.Fatalf("memory.max %q", got)
			}
			if got := strings.TrimSpace(f.mustExec(t, mainID, "cat", "/sys/fs/cgroup/cpu.max")); got != "50000 100000" {
				t.Fatalf("cpu.max %q", got)
			}
		}},
		{"a CPU limit above the VM's size adds a vCPU", func(t *testing.T) {
			if got := strings.TrimSpace(f.mustExec(t, mainID, "cat", "/sys/devices/system/cpu/online")); got != "0" {
				t.Fatalf("online vCPUs before: %q, want 0", got)
			}
			_, err := f.cl.Runtime.UpdateContainerResources(f.ctx, &runtimeapi.UpdateContainerResourcesRequest{
				ContainerId: mainID,
				Linux:       &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 96 << 20, CpuPeriod: 100000, CpuQuota: 150000},
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(f.mustExec(t, mainID, "cat", "/sys/devices/system/cpu/online")); got != "0-1" {
				t.Fatalf("online vCPUs after: %q, want 0-1", got)
			}
			if got := strings.TrimSpace(f.mustExec(t, mainID, "cat", "/sys/fs/cgroup/cpu.max")); got != "150000 100000" {
				t.Fatalf("cpu.max %q", got)
			}
		}},
		{"stop with grace period delivers TERM", func(t *testing.T) {
			if _, err := f.cl.Runtime.StopContainer(f.ctx, &runtimeapi.StopContainerRequest{ContainerId: mainID, Timeout: 20}); err != nil {
				t.Fatal(err)
			}
			st := f.waitExited(t, mainID, 30*time.Second)
			if err := logHas(mainLog, "got TERM"); st.ExitCode != 0 || err != nil {
				t.Fatalf("exit %d reason %q; %v", st.ExitCode, st.Reason, err)
			}
		}},
		{"container restarted in the same pod", func(t *testing.T) {
			if _, err := f.cl.Runtime.RemoveContainer(f.ctx, &runtimeapi.RemoveContainerRequest{ContainerId: mainID}); err != nil {
				t.Fatal(err)
			}
			again := shContainer("main", `echo again; while true; do sleep 1; done`)
			again.Metadata.Attempt = 1
			again.LogPath = "main-1.log"
			id := f.startContainer(t, pod, podCfg, again)
			integration.Eventually(t, "restarted container logs", 30*time.Second, func() error { return logHas(LogPath(podCfg, again), "again") })
			if st := f.status(t, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
				t.Fatalf("state %v", st.State)
			}
		}},
		{"OOM kill is reported as OOMKilled", func(t *testing.T) {
			cfg := shContainer("hog", `tail /dev/zero`)
			cfg.Linux.Resources.MemoryLimitInBytes = 24 << 20
			id := f.startContainer(t, pod, podCfg, cfg)
			st := f.waitExited(t, id, time.Minute)
			if st.Reason != "OOMKilled" || st.ExitCode != 137 {
				t.Fatalf("reason %q exit %d, want OOMKilled 137", st.Reason, st.ExitCode)
			}
		}},
	}
	for _, tc := range cases {
		if !t.Run(tc.name, tc.run) {
			// Later cases build on earlier ones.
			t.FailNow()
		}
	}
}
