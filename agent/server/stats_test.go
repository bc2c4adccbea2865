package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veil-runtime/veil/agent/api"
)

const (
	testMeminfo = "MemTotal:         250000 kB\nMemFree:          100000 kB\nMemAvailable:     200000 kB\n"
	testStat    = "cpu  10 1 20 300 4 0 2 0 0 0\ncpu0 10 1 20 300 4 0 2 0 0 0\nintr 1\n"
)

// writeFiles creates files (path relative to dir → content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// fakeCgroupContainers adds cgroup paths to fakeContainers.
type fakeCgroupContainers struct {
	fakeContainers
	paths map[string]string
}

func (f *fakeCgroupContainers) CgroupPaths() map[string]string { return f.paths }

func TestStats(t *testing.T) {
	proc := map[string]string{"meminfo": testMeminfo, "stat": testStat, "loadavg": "0.50 0.25 0.10 2/50 99\n", "uptime": "12.34 20.00\n",
		"1/status": "Name: init\n", "42/status": "Name: sh\n", "sys/kernel/x": "1\n"}
	cases := []struct {
		name    string
		proc    map[string]string
		cgroups map[string]string // container id → cgroup dir name under the temp dir
		files   map[string]string // cgroup files
		wantErr string
		check   func(t *testing.T, r *api.StatsResponse)
	}{
		{name: "guest only", proc: proc, check: func(t *testing.T, r *api.StatsResponse) {
			if r.MemoryTotalBytes != 250000*1024 || r.MemoryAvailableBytes != 200000*1024 {
				t.Errorf("memory %d/%d", r.MemoryAvailableBytes, r.MemoryTotalBytes)
			}
			if r.Cpu.UserUsec != 100_000 || r.Cpu.SystemUsec != 200_000 || r.Cpu.IdleUsec != 3_000_000 || r.Cpu.Online != 1 {
				t.Errorf("cpu %+v", r.Cpu)
			}
			if r.Load1 != 0.5 || r.Load15 != 0.1 || r.UptimeSeconds != 12.34 || len(r.Containers) != 0 {
				t.Errorf("load %v %v uptime %v containers %d", r.Load1, r.Load15, r.UptimeSeconds, len(r.Containers))
			}
			if r.Processes != 2 || r.Tasks != 50 || r.TasksRunning != 2 {
				t.Errorf("processes %d tasks %d running %d, want 2 50 2", r.Processes, r.Tasks, r.TasksRunning)
			}
		}},
		{name: "containers", proc: proc,
			cgroups: map[string]string{"c1": "veil/c1", "c2": "veil/c2"},
			files: map[string]string{
				"veil/c1/cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n", "veil/c1/memory.current": "4096\n",
				"veil/c1/memory.max": "max\n", "veil/c1/pids.current": "3\n",
				"veil/c1/memory.events": "low 0\nhigh 1\nmax 4\noom 2\noom_kill 1\noom_group_kill 0\n",
				"veil/c2/cpu.stat":      "usage_usec 7\n",
			},
			check: func(t *testing.T, r *api.StatsResponse) {
				if len(r.Containers) != 2 {
					t.Fatalf("containers %v", r.Containers)
				}
				c1, c2 := r.Containers[0], r.Containers[1]
				if c1.ContainerId != "c1" || c1.CpuUsageUsec != 1500 || c1.CpuUserUsec != 1000 || c1.MemoryCurrentBytes != 4096 || c1.MemoryLimitBytes != 0 || c1.PidsCurrent != 3 || c1.Error != "" {
					t.Errorf("c1 %+v", c1)
				}
				if e := c1.MemoryEvents; e == nil || e.High != 1 || e.Max != 4 || e.Oom != 2 || e.OomKill != 1 {
					t.Errorf("c1 memory events %+v", e)
				}
				if c2.CpuUsageUsec != 7 || !strings.Contains(c2.Error, "memory.current") {
					t.Errorf("c2 %+v", c2)
				}
			}},
		{name: "no meminfo", proc: map[string]string{"stat": testStat}, wantErr: "meminfo"},
		{name: "meminfo without MemAvailable", proc: map[string]string{"meminfo": "MemTotal: 1 kB\n", "stat": testStat}, wantErr: "MemAvailable"},
		{name: "stat without cpu line", proc: map[string]string{"meminfo": testMeminfo, "stat": "intr 1\n"}, wantErr: "no cpu line"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			procDir, cgDir := filepath.Join(dir, "proc"), filepath.Join(dir, "cgroup")
			writeFiles(t, procDir, tc.proc)
			writeFiles(t, cgDir, tc.files)
			paths := map[string]string{}
			for id, p := range tc.cgroups {
				paths[id] = filepath.Join(cgDir, p)
			}
			s := NewService("v", &fakeCgroupContainers{paths: paths}, &fakeGuest{})
			s.procRoot = procDir
			r, err := s.Stats(context.Background(), &api.StatsRequest{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, r)
		})
	}
}

// fakeExecContainers adds exec record counts to fakeCgroupContainers.
type fakeExecContainers struct {
	fakeCgroupContainers
	execs map[string]int
}

func (f *fakeExecContainers) ExecRecords() map[string]int { return f.execs }

// TestStatsExecRecords: each container's exec_records is the manager's
// count, and 0 for a container without records.
func TestStatsExecRecords(t *testing.T) {
	dir := t.TempDir()
	procDir, cgDir := filepath.Join(dir, "proc"), filepath.Join(dir, "cgroup")
	writeFiles(t, procDir, map[string]string{"meminfo": testMeminfo, "stat": testStat, "loadavg": "0 0 0 1/1 1\n", "uptime": "1 1\n"})
	writeFiles(t, cgDir, map[string]string{"a/cpu.stat": "usage_usec 1\n", "b/cpu.stat": "usage_usec 1\n"})
	s := NewService("v", &fakeExecContainers{
		fakeCgroupContainers: fakeCgroupContainers{paths: map[string]string{"a": filepath.Join(cgDir, "a"), "b": filepath.Join(cgDir, "b")}},
		execs:                map[string]int{"a": 3},
	}, &fakeGuest{})
	s.procRoot = procDir
	r, err := s.Stats(context.Background(), &api.StatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint32{}
	for _, c := range r.Containers {
		got[c.ContainerId] = c.ExecRecords
	}
	if got["a"] != 3 || got["b"] != 0 || len(got) != 2 {
		t.Fatalf("exec records %v, want a:3 b:0", got)
	}
}
