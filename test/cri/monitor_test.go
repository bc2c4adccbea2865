package cri

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/veil-runtime/veil/runtime/statedir"
	"github.com/veil-runtime/veil/test/harness"
)

// TestMonitor scrapes `veil monitor` over HTTP with two running pods:
// both pods' series carry their pod labels and plausible values (the
// shim's telemetry and the node's start histograms and failures too); a
// spinning container's CPU seconds grow; a pod whose VM is frozen fails
// its own guest scrape within monitor.sandbox_timeout while the other's
// succeeds; a removed pod is gone from the next scrape.
func TestMonitor(t *testing.T) { modes(t, testMonitor) }

func testMonitor(t *testing.T, f *fixture) {
	mctx, cancel := context.WithTimeout(f.ctx, time.Minute)
	defer cancel()
	m, err := harness.StartMonitor(mctx, f.shared.ConfigPath, filepath.Join(t.TempDir(), "monitor.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(f.ctx), 30*time.Second)
		defer cancel()
		if err := m.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	wantMode := "cold"
	if f.shared.Pool != nil {
		wantMode = "warm"
	}
	type pod struct{ name, id, spinner string }
	pods := []*pod{{name: "mon-a"}, {name: "mon-b"}}
	for _, p := range pods {
		cfg := f.podConfig(p.name)
		p.id = f.runPod(t, harness.HandlerVeil, cfg)
		p.spinner = f.startContainer(t, p.id, cfg, shContainer("spin", `echo spinning; while :; do :; done`))
	}
	// A pod whose start fails (a guest below the smallest size) is in
	// the start failures, by its step.
	bad := f.podConfig("mon-bad")
	bad.Annotations = map[string]string{"io.veil.config.guest.memory_mib": "1"}
	bctx, bcancel := context.WithTimeout(f.ctx, time.Minute)
	if id, err := f.cl.RunPod(bctx, bad, harness.HandlerVeil); err == nil {
		bcancel()
		f.removePod(t, id, harness.HandlerVeil)
		t.Fatal("a pod with a 1 MiB guest started")
	}
	bcancel()
	labels := func(p *pod, kv ...string) map[string]string {
		l := map[string]string{"sandbox_id": p.id, "pod_name": p.name, "pod_namespace": "veil-test", "pod_uid": p.name + "-uid"}
		for i := 0; i+1 < len(kv); i += 2 {
			l[kv[i]] = kv[i+1]
		}
		return l
	}
	spinCPU := func(fams map[string]*dto.MetricFamily, p *pod) (float64, bool) {
		u, ok1 := harness.Series(fams, "veil_container_cpu_seconds_total", labels(p, "container_id", p.spinner, "mode", "user"))
		s, ok2 := harness.Series(fams, "veil_container_cpu_seconds_total", labels(p, "container_id", p.spinner, "mode", "system"))
		return u + s, ok1 && ok2
	}
	// scrapeUntil scrapes until ok holds or the deadline passes.
	scrapeUntil := func(what string, within time.Duration, ok func(map[string]*dto.MetricFamily) bool) map[string]*dto.MetricFamily {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
			fams, text, err := m.Scrape(ctx)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			if ok(fams) {
				return fams
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v; last scrape:\n%s", what, within, trimScrape(text))
			}
		}
	}

	first := scrapeUntil("both spinners reported", time.Minute, func(fams map[string]*dto.MetricFamily) bool {
		_, a := spinCPU(fams, pods[0])
		_, b := spinCPU(fams, pods[1])
		return a && b
	})
	memMiB := float64(f.shared.Config.Guest.MemoryMiB)
	for _, p := range pods {
		checks := []struct {
			name, family string
			labels       map[string]string
			ok           func(v float64) bool
			want         string
		}{
			{"info with the pod's labels", "veil_sandbox_info", labels(p, "start_mode", wantMode, "hypervisor", "qemu"), func(v float64) bool { return v == 1 }, "1"},
			{"guest read", "veil_sandbox_scrape_success", labels(p, "source", "guest"), func(v float64) bool { return v == 1 }, "1"},
			{"guest memory is the VM's size", "veil_guest_memory_total_bytes", labels(p), func(v float64) bool { return v <= memMiB*(1<<20) && v >= 0.85*memMiB*(1<<20) }, "within 15 % below guest.memory_mib"},
			{"VMM resident", "veil_helper_resident_memory_bytes", labels(p, "helper", "vmm"), func(v float64) bool { return v > 0 }, "> 0"},
			{"virtiofsd threads", "veil_helper_threads", labels(p, "helper", "virtiofsd"), func(v float64) bool { return v > 0 }, "> 0"},
			{"cgroup memory", "veil_sandbox_cgroup_memory_bytes", labels(p), func(v float64) bool { return v > 0 }, "> 0"},
			{"guest processes", "veil_guest_processes", labels(p), func(v float64) bool { return v > 2 }, "> 2"},
			{"spinner tasks", "veil_container_tasks", labels(p, "container_id", p.spinner), func(v float64) bool { return v >= 1 }, ">= 1"},
			{"shim read", "veil_sandbox_scrape_success", labels(p, "source", "shim"), func(v float64) bool { return v == 1 }, "1"},
			{"shim resident", "veil_helper_resident_memory_bytes", labels(p, "helper", "shim"), func(v float64) bool { return v > 0 }, "> 0"},
			{"StartContainer requests (pause and spinner)", "veil_agent_rpc_duration_seconds", labels(p, "method", "StartContainer"), func(v float64) bool { return v >= 2 }, ">= 2"},
			{"stdout bytes (\"spinning\\n\")", "veil_stdio_bytes_total", labels(p, "stream", "stdout"), func(v float64) bool { return v >= 9 }, ">= 9"},
		}
		for _, c := range checks {
			v, ok := harness.Series(first, c.family, c.labels)
			if !ok || !c.ok(v) {
				t.Errorf("%s %s: %s%v = %v (present %v), want %s", p.name, c.name, c.family, c.labels, v, ok, c.want)
			}
		}
	}

	// Both starts are in the node's start histograms, with their stages.
	for _, c := range []struct {
		family string
		labels map[string]string
	}{
		{"veil_sandbox_start_duration_seconds", map[string]string{"start_mode": wantMode}},
		{"veil_sandbox_start_stage_duration_seconds", map[string]string{"start_mode": wantMode, "stage": "CreateSandbox"}},
	} {
		if v, ok := harness.Series(first, c.family, c.labels); !ok || v < 2 {
			t.Errorf("%s%v counts %v starts (present %v), want ≥ 2", c.family, c.labels, v, ok)
		}
	}

	if v, ok := harness.Series(first, "veil_sandbox_start_failures_total", map[string]string{"start_mode": "cold", "step": "config"}); !ok || v < 1 {
		t.Errorf("cold start failures at config = %v (present %v), want ≥ 1", v, ok)
	}

	// The spinners' CPU time grows.
	before := map[string]float64{}
	for _, p := range pods {
		before[p.id], _ = spinCPU(first, p)
	}
	scrapeUntil("spinners' CPU seconds grow by 0.5 s", time.Minute, func(fams map[string]*dto.MetricFamily) bool {
		for _, p := range pods {
			if v, ok := spinCPU(fams, p); !ok || v < before[p.id]+0.5 {
				return false
			}
		}
		return true
	})

	// A frozen VM fails its own guest scrape within the bound; the other
	// pod's is read in full.
	frozen, other := pods[0], pods[1]
	qctx, qcancel := context.WithTimeout(f.ctx, 30*time.Second)
	defer qcancel()
	if err := harness.QMP(qctx, filepath.Join(f.stateDir, frozen.id), "stop"); err != nil {
		t.Fatal(err)
	}
	// Should the test fail before it ends the frozen VM, the pod's
	// removal must not wait for the agent.
	vmKilled := false
	t.Cleanup(func() {
		if !vmKilled {
			killVMM(t, filepath.Join(f.stateDir, frozen.id))
		}
	})
	bound := f.shared.Config.Monitor.SandboxTimeout.Duration
	began := time.Now()
	ctx, cancel2 := context.WithTimeout(f.ctx, 30*time.Second)
	fams, text, err := m.Scrape(ctx)
	cancel2()
	took := time.Since(began)
	if err != nil {
		t.Fatal(err)
	}
	if took > bound+3*time.Second {
		t.Errorf("scrape with a frozen VM took %v, bound %v (monitor.sandbox_timeout) + 3 s", took, bound)
	}
	if v, ok := harness.Series(fams, "veil_sandbox_scrape_success", labels(frozen, "source", "guest")); !ok || v != 0 {
		t.Errorf("frozen pod's guest scrape_success = %v (present %v), want 0", v, ok)
	}
	if _, ok := harness.Series(fams, "veil_guest_memory_total_bytes", labels(frozen)); ok {
		t.Error("frozen pod still has guest series")
	}
	if v, ok := harness.Series(fams, "veil_helper_resident_memory_bytes", labels(frozen, "helper", "vmm")); !ok || v <= 0 {
		t.Errorf("frozen pod's VMM RSS = %v (present %v): its host side must still be read", v, ok)
	}
	if v, ok := harness.Series(fams, "veil_sandbox_scrape_success", labels(frozen, "source", "shim")); !ok || v != 1 {
		t.Errorf("frozen pod's shim scrape_success = %v (present %v), want 1: the shim is the host's", v, ok)
	}
	if v, ok := harness.Series(fams, "veil_sandbox_scrape_success", labels(other, "source", "guest")); !ok || v != 1 {
		t.Errorf("other pod's guest scrape_success = %v (present %v), want 1\n%s", v, ok, trimScrape(text))
	}
	if v, ok := harness.Series(fams, "veil_monitor_sandbox_scrape_failures_total", map[string]string{"source": "guest"}); !ok || v < 1 {
		t.Errorf("guest scrape failures = %v (present %v), want ≥ 1", v, ok)
	}
	t.Logf("scrape with one frozen VM took %v (bound %v)", took, bound)

	// A removed pod is gone from the next scrape.
	f.removePod(t, other.id, harness.HandlerVeil)
	ctx, cancel3 := context.WithTimeout(f.ctx, 30*time.Second)
	fams, text, err = m.Scrape(ctx)
	cancel3()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text, `sandbox_id="`+other.id+`"`) {
		t.Errorf("removed pod %s still in the scrape:\n%s", other.id, trimScrape(text))
	}
	if _, ok := harness.Series(fams, "veil_sandbox_info", labels(frozen)); !ok {
		t.Error("the remaining pod is gone from the scrape")
	}
	// End the frozen VM, so that its removal does not wait for an agent
	// that cannot answer: the shim sees the VM die and reports its
	// containers exited, which the removal waits for (as a kubelet sees
	// the exit before it removes the pod).
	killVMM(t, filepath.Join(f.stateDir, frozen.id))
	vmKilled = true
	wctx, wcancel := context.WithTimeout(f.ctx, time.Minute)
	defer wcancel()
	if _, err := f.cl.WaitExited(wctx, frozen.spinner); err != nil {
		t.Fatal(err)
	}
}

// trimScrape keeps a scrape's veil_ sample lines, for failure messages.
func trimScrape(text string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "veil_") && !strings.HasPrefix(l, "veil_monitor_go_") && !strings.HasPrefix(l, "veil_monitor_process_") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// killVMM ends the QEMU of the sandbox directory dir with SIGKILL.
func killVMM(t *testing.T, dir string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "qemu"+statedir.PidSuffix))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the VMM: %v", err)
	}
}
