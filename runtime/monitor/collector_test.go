package monitor

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/cgroup"
	"github.com/veil-runtime/veil/runtime/inspect"
	"github.com/veil-runtime/veil/runtime/statedir"
	shimapi "github.com/veil-runtime/veil/shim/api"
)

var update = flag.Bool("update", false, "rewrite testdata/metrics.golden")

// fakeSource serves fixed sandboxes; guest answers per sandbox id, and a
// sandbox listed in block never answers (a frozen guest).
type fakeSource struct {
	sbs     []inspect.SandboxInfo
	usage   map[int]inspect.ProcUsage
	guest   map[string]*api.StatsResponse
	block   map[string]bool
	listErr error
	starts  []statedir.StartRecord
}

func (f *fakeSource) List() ([]inspect.SandboxInfo, error) { return f.sbs, f.listErr }

func (f *fakeSource) Usage(pid int) (inspect.ProcUsage, error) {
	u, ok := f.usage[pid]
	if !ok {
		return u, fmt.Errorf("pid %d: %w", pid, os.ErrNotExist)
	}
	return u, nil
}

func (f *fakeSource) CgroupStats(sb inspect.SandboxInfo) (cgroup.Stats, error) {
	return cgroup.Stats{MemoryBytes: 300 << 20, CPUNanos: 2_500_000_000, NrPeriods: 10, NrThrottled: 2, Pids: 12}, nil
}

func (f *fakeSource) ShimTelemetry(ctx context.Context, sb inspect.SandboxInfo) (int, *shimapi.GetResponse, error) {
	if sb.ID != "pod1" {
		return 0, nil, errors.New("dial shim.sock: no such file or directory")
	}
	return 104, &shimapi.GetResponse{
		RpcBucketBounds: []float64{0.01, 0.1, 1},
		AgentRpcs:       []*shimapi.RPC{{Method: "StartContainer", Count: 3, SumSeconds: 0.6, Buckets: []uint64{0, 1, 3}, Errors: 1}},
		Stdio:           []*shimapi.Stream{{Stream: "stdin", Bytes: 0}, {Stream: "stdout", Bytes: 1234}, {Stream: "stderr", Bytes: 5}},
	}, nil
}

// Starts hands out the journal's records once, as a journal reader does.
func (f *fakeSource) Starts() ([]statedir.StartRecord, error) {
	recs := f.starts
	f.starts = nil
	return recs, nil
}

func (f *fakeSource) GuestStats(ctx context.Context, sb inspect.SandboxInfo) (*api.StatsResponse, error) {
	if f.block[sb.ID] {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	st, ok := f.guest[sb.ID]
	if !ok {
		return nil, errors.New("agent: connection refused")
	}
	return st, nil
}

func helpers(vmm string, base int) []inspect.Helper {
	return []inspect.Helper{
		{Name: vmm, Pid: base, Alive: true},
		{Name: "vhost-vsock", Pid: base + 1, Alive: true},
		{Name: "virtiofsd", Pid: base + 2, Alive: true},
	}
}

// newFake has a warm CRI pod with two containers (one unreadable) and a
// cold sandbox without a pod whose agent refuses.
func newFake() *fakeSource {
	created := time.Unix(1_800_000_000, 0)
	pod := inspect.SandboxInfo{ID: "pod1", PoolVM: "vm0123456789ab", Hypervisor: "qemu", State: inspect.StateRunning, Created: created,
		Helpers: append(helpers("qemu", 100), inspect.Helper{Name: "keeper", Pid: 103, Alive: true}),
		Pod:     statedir.Pod{Name: "web", Namespace: "shop", UID: "u-1"}, Cgroup: "/kubepods/pod1",
		Containers: []string{"c1", "c2", "c3"}}
	plain := inspect.SandboxInfo{ID: "ctr1", Hypervisor: "qemu", State: inspect.StateRunning, Created: created,
		Helpers: helpers("qemu", 200), Cgroup: "/veil/ctr1"}
	usage := map[int]inspect.ProcUsage{}
	for _, pid := range []int{100, 101, 102, 103, 104, 200, 201, 202} {
		usage[pid] = inspect.ProcUsage{RSSBytes: uint64(pid) << 20, UserTime: time.Second, SystemTime: 2 * time.Second, Threads: 3, OpenFDs: 20}
	}
	return &fakeSource{
		starts: []statedir.StartRecord{
			{Sandbox: "pod1", Mode: "warm", OK: true, Seconds: 0.2, Stages: []statedir.StartStage{{Name: "adopt VM", Seconds: 0.004}, {Name: "CreateSandbox", Seconds: 0.05}}},
			{Sandbox: "x", Mode: "warm", Step: "connect to agent", Seconds: 2},
			{Sandbox: "x", Mode: "cold", OK: true, Seconds: 2.5, Stages: []statedir.StartStage{{Name: "start VM", Seconds: 0.1}}},
			{Sandbox: "y", Mode: "cold", Step: "start VM", Seconds: 30},
			{Sandbox: "z", Mode: "bogus", OK: true},
		},
		sbs:   []inspect.SandboxInfo{plain, pod},
		usage: usage,
		guest: map[string]*api.StatsResponse{"pod1": {
			MemoryTotalBytes: 2000 << 20, MemoryAvailableBytes: 1500 << 20,
			Cpu:   &api.CPUStats{UserUsec: 1_000_000, SystemUsec: 500_000, IdleUsec: 9_000_000, Online: 1},
			Load1: 0.5, Load5: 0.25, Load15: 0.125, UptimeSeconds: 60, Processes: 12, Tasks: 40, TasksRunning: 1,
			Containers: []*api.ContainerStats{
				{ContainerId: "c1", CpuUserUsec: 3_000_000, CpuSystemUsec: 1_000_000, MemoryCurrentBytes: 64 << 20, MemoryLimitBytes: 128 << 20,
					PidsCurrent: 2, MemoryEvents: &api.MemoryEvents{Oom: 1, OomKill: 1}},
				{ContainerId: "c2", MemoryCurrentBytes: 1 << 20},
				{ContainerId: "c3", Error: "read cpu.stat: no such file"},
				{ContainerId: "made-up", MemoryCurrentBytes: 1 << 30},
				{ContainerId: "c2", MemoryCurrentBytes: 1 << 30}, // repeated by the guest
			},
		}},
	}
}

func newTestCollector(src Source, timeout time.Duration) *Collector {
	return NewCollector(context.Background(), src, Options{SandboxTimeout: timeout, Concurrency: 4})
}

// TestLint: every series passes client_golang's lint.
func TestLint(t *testing.T) {
	reg, err := NewRegistry(newTestCollector(newFake(), time.Second))
	if err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// TestGolden: the families' names, types and label names are the ones
// testdata/metrics.golden pins (go test -run TestGolden -update rewrites
// it); dashboards and alerts depend on them.
func TestGolden(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newTestCollector(newFake(), time.Second))
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, f := range fams {
		labels := map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = true
			}
		}
		names := make([]string, 0, len(labels))
		for l := range labels {
			names = append(names, l)
		}
		slices.Sort(names)
		lines = append(lines, fmt.Sprintf("%s %s %s", f.GetName(), strings.ToLower(f.GetType().String()), strings.Join(names, ",")))
	}
	got := strings.Join(lines, "\n") + "\n"
	path := filepath.Join("testdata", "metrics.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("metric families changed (go test -run TestGolden -update, then review the diff):\ngot:\n%s\nwant:\n%s", got, want)
	}
}

// series finds the value of the series of family name whose labels
// include want; ok is false when there is none.
func series(t *testing.T, fams []*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	t.Helper()
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			switch {
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			}
		}
	}
	return 0, false
}

func TestValues(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newTestCollector(newFake(), time.Second))
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	pod := map[string]string{"sandbox_id": "pod1", "pod_name": "web", "pod_namespace": "shop", "pod_uid": "u-1"}
	plain := map[string]string{"sandbox_id": "ctr1", "pod_name": "", "pod_namespace": "", "pod_uid": ""}
	merge := func(a map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range a {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	cases := []struct {
		name   string
		family string
		labels map[string]string
		want   float64
		absent bool
	}{
		{name: "sandboxes", family: "veil_monitor_sandboxes", want: 2},
		{name: "warm pod info", family: "veil_sandbox_info", labels: merge(pod, "start_mode", "warm", "hypervisor", "qemu"), want: 1},
		{name: "cold sandbox info", family: "veil_sandbox_info", labels: merge(plain, "start_mode", "cold"), want: 1},
		{name: "vmm rss", family: "veil_helper_resident_memory_bytes", labels: merge(pod, "helper", "vmm"), want: 100 << 20},
		{name: "vsock threads", family: "veil_helper_threads", labels: merge(pod, "helper", "vsock"), want: 3},
		{name: "keeper fds", family: "veil_helper_open_fds", labels: merge(pod, "helper", "keeper"), want: 20},
		{name: "virtiofsd system cpu", family: "veil_helper_cpu_seconds_total", labels: merge(plain, "helper", "virtiofsd", "mode", "system"), want: 2},
		{name: "cgroup cpu", family: "veil_sandbox_cgroup_cpu_seconds_total", labels: pod, want: 2.5},
		{name: "guest total", family: "veil_guest_memory_total_bytes", labels: pod, want: 2000 << 20},
		{name: "guest in containers", family: "veil_guest_memory_containers_bytes", labels: pod, want: 65 << 20},
		{name: "guest user cpu", family: "veil_guest_cpu_seconds_total", labels: merge(pod, "mode", "user"), want: 1},
		{name: "guest tasks running", family: "veil_guest_tasks", labels: merge(pod, "state", "running"), want: 1},
		{name: "container user cpu", family: "veil_container_cpu_seconds_total", labels: merge(pod, "container_id", "c1", "mode", "user"), want: 3},
		{name: "container limit", family: "veil_container_memory_limit_bytes", labels: merge(pod, "container_id", "c1"), want: 128 << 20},
		{name: "no limit, no series", family: "veil_container_memory_limit_bytes", labels: merge(pod, "container_id", "c2"), absent: true},
		{name: "container oom kills", family: "veil_container_oom_kills_total", labels: merge(pod, "container_id", "c1"), want: 1},
		{name: "container the host does not know left out", family: "veil_container_memory_bytes", labels: merge(pod, "container_id", "made-up"), absent: true},
		{name: "unreadable container left out", family: "veil_container_memory_bytes", labels: merge(pod, "container_id", "c3"), absent: true},
		{name: "containers partly read", family: "veil_sandbox_scrape_success", labels: merge(pod, "source", "containers"), want: 0},
		{name: "pod guest read", family: "veil_sandbox_scrape_success", labels: merge(pod, "source", "guest"), want: 1},
		{name: "refused guest", family: "veil_sandbox_scrape_success", labels: merge(plain, "source", "guest"), want: 0},
		{name: "refused guest has no guest series", family: "veil_guest_memory_total_bytes", labels: plain, absent: true},
		{name: "host read", family: "veil_sandbox_scrape_success", labels: merge(plain, "source", "host"), want: 1},
		{name: "shim as a helper", family: "veil_helper_resident_memory_bytes", labels: merge(pod, "helper", "shim"), want: 104 << 20},
		{name: "shim read", family: "veil_sandbox_scrape_success", labels: merge(pod, "source", "shim"), want: 1},
		{name: "no shim socket", family: "veil_sandbox_scrape_success", labels: merge(plain, "source", "shim"), want: 0},
		{name: "agent rpc errors", family: "veil_agent_rpc_errors_total", labels: merge(pod, "method", "StartContainer"), want: 1},
		{name: "stdout bytes", family: "veil_stdio_bytes_total", labels: merge(pod, "stream", "stdout"), want: 1234},
		{name: "failures counted", family: "veil_monitor_sandbox_scrape_failures_total", labels: map[string]string{"source": "guest"}, want: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := series(t, fams, tc.family, tc.labels)
			if tc.absent {
				if ok {
					t.Fatalf("%s%v present (%v), want absent", tc.family, tc.labels, got)
				}
				return
			}
			if !ok {
				t.Fatalf("%s%v absent", tc.family, tc.labels)
			}
			if got != tc.want {
				t.Errorf("%s%v = %v, want %v", tc.family, tc.labels, got, tc.want)
			}
		})
	}
}

// TestFrozenGuest: a guest that never answers fails its own sandbox's
// scrape at the timeout; the other sandbox is read in full.
func TestFrozenGuest(t *testing.T) {
	src := newFake()
	src.block = map[string]bool{"ctr1": true}
	src.guest["ctr1"] = src.guest["pod1"]
	reg := prometheus.NewRegistry()
	reg.MustRegister(newTestCollector(src, 300*time.Millisecond))
	began := time.Now()
	fams, err := reg.Gather()
	took := time.Since(began)
	if err != nil {
		t.Fatal(err)
	}
	if took > 3*time.Second {
		t.Errorf("scrape took %v with a 300ms sandbox timeout", took)
	}
	frozen := map[string]string{"sandbox_id": "ctr1", "source": "guest"}
	if v, ok := series(t, fams, "veil_sandbox_scrape_success", frozen); !ok || v != 0 {
		t.Errorf("frozen guest scrape_success = %v (present %v), want 0", v, ok)
	}
	if v, ok := series(t, fams, "veil_sandbox_scrape_success", map[string]string{"sandbox_id": "pod1", "source": "guest"}); !ok || v != 1 {
		t.Errorf("other guest scrape_success = %v (present %v), want 1", v, ok)
	}
	if _, ok := series(t, fams, "veil_guest_memory_total_bytes", map[string]string{"sandbox_id": "pod1"}); !ok {
		t.Error("other sandbox's guest series missing")
	}
	if _, ok := series(t, fams, "veil_helper_resident_memory_bytes", map[string]string{"sandbox_id": "ctr1", "helper": "vmm"}); !ok {
		t.Error("frozen sandbox's host series missing: only its guest should fail")
	}
}

// TestListFails: an unreadable state_dir fails the scrape's sandbox list
// (an error in the answer), not the process.
func TestListFails(t *testing.T) {
	src := newFake()
	src.listErr = errors.New("permission denied")
	reg := prometheus.NewRegistry()
	reg.MustRegister(newTestCollector(src, time.Second))
	if _, err := reg.Gather(); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("gather: %v, want the list error", err)
	}
}

// TestStarts: the start journal's records enter the start histograms and
// failure counters once, however many scrapes follow.
func TestStarts(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newTestCollector(newFake(), time.Second))
	var fams []*dto.MetricFamily
	for range 3 {
		var err error
		if fams, err = reg.Gather(); err != nil {
			t.Fatal(err)
		}
	}
	count := func(name string, labels map[string]string) uint64 {
		for _, f := range fams {
			if f.GetName() != name {
				continue
			}
		next:
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
						continue next
					}
				}
				return m.GetHistogram().GetSampleCount()
			}
		}
		return 0
	}
	if n := count("veil_sandbox_start_duration_seconds", map[string]string{"start_mode": "warm"}); n != 1 {
		t.Errorf("warm starts observed %d times, want 1", n)
	}
	if n := count("veil_sandbox_start_duration_seconds", map[string]string{"start_mode": "cold"}); n != 1 {
		t.Errorf("cold starts observed %d times, want 1 (the failed one is not a start)", n)
	}
	if n := count("veil_sandbox_start_stage_duration_seconds", map[string]string{"start_mode": "warm", "stage": "CreateSandbox"}); n != 1 {
		t.Errorf("CreateSandbox stage observed %d times, want 1", n)
	}
	for _, c := range []struct {
		mode, step string
	}{{"warm", "connect to agent"}, {"cold", "start VM"}} {
		v, ok := series(t, fams, "veil_sandbox_start_failures_total", map[string]string{"start_mode": c.mode, "step": c.step})
		if !ok || v != 1 {
			t.Errorf("%s failures at %q = %v (present %v), want 1", c.mode, c.step, v, ok)
		}
	}
	if n := count("veil_agent_rpc_duration_seconds", map[string]string{"sandbox_id": "pod1", "method": "StartContainer"}); n != 3 {
		t.Errorf("StartContainer requests %d, want 3", n)
	}
}

// TestConcurrentScrapes: two scrapes at once (Prometheus servers, a
// curl) gather without a race (go test -race) and both succeed.
func TestConcurrentScrapes(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newTestCollector(newFake(), time.Second))
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := reg.Gather()
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
