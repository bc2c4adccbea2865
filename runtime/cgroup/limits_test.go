package cgroup

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLimitsResources(t *testing.T) {
	for _, tc := range []struct {
		name         string
		l            Limits
		memory, pids int64
		quota        int64
		wantErr      string
	}{
		{name: "no limits", l: Limits{}, memory: -1, pids: -1, quota: -1},
		{name: "all", l: Limits{MemoryBytes: 1 << 30, Pids: 1024, CPUs: 2.5}, memory: 1 << 30, pids: 1024, quota: 250000},
		{name: "fraction rounds", l: Limits{CPUs: 0.123456}, memory: -1, pids: -1, quota: 12346},
		{name: "tiny CPUs take the kernel's minimum", l: Limits{CPUs: 0.001}, memory: -1, pids: -1, quota: 1000},
		{name: "negative memory", l: Limits{MemoryBytes: -1}, wantErr: "memory limit -1 is negative"},
		{name: "negative pids", l: Limits{Pids: -5}, wantErr: "pids limit -5 is negative"},
		{name: "negative CPUs", l: Limits{CPUs: -1}, wantErr: "CPU limit -1 is not a number of CPUs"},
		{name: "NaN CPUs", l: Limits{CPUs: math.NaN()}, wantErr: "CPU limit NaN"},
		{name: "infinite CPUs", l: Limits{CPUs: math.Inf(1)}, wantErr: "CPU limit +Inf"},
		{name: "huge CPUs", l: Limits{CPUs: 1e9}, wantErr: "too large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.l.validate()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("validate(%+v) = %v; want an error containing %q", tc.l, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("validate(%+v): %v", tc.l, err)
			}
			r := tc.l.resources()
			if !r.SkipDevices {
				t.Error("SkipDevices is false: the library would write a deny-all device list")
			}
			if r.Memory != tc.memory || r.PidsLimit == nil || *r.PidsLimit != tc.pids || r.CpuQuota != tc.quota || r.CpuPeriod != 100000 {
				t.Errorf("resources(%+v): memory %d, pids %v, quota %d/%d; want %d, %d, %d/100000",
					tc.l, r.Memory, r.PidsLimit, r.CpuQuota, r.CpuPeriod, tc.memory, tc.pids, tc.quota)
			}
		})
	}
}

// TestV1Quota checks the quota chosen on v1 against a fake hierarchy:
// none of the cgroup's own when an ancestor allows no more.
func TestV1Quota(t *testing.T) {
	// mnt/kubepods/pod1/sandbox: only pod1 has a quota, 2 CPUs over a
	// 50 ms period.
	mnt := t.TempDir()
	write := func(dir, file, v string) {
		t.Helper()
		d := filepath.Join(mnt, dir)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, file), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("", "cpu.cfs_quota_us", "-1")
	write("", "cpu.cfs_period_us", "100000")
	write("kubepods", "cpu.cfs_quota_us", "-1")
	write("kubepods", "cpu.cfs_period_us", "100000")
	write("kubepods/pod1", "cpu.cfs_quota_us", "100000")
	write("kubepods/pod1", "cpu.cfs_period_us", "50000")
	write("kubepods/pod1/sandbox", "cpu.cfs_quota_us", "-1")
	write("kubepods/pod1/sandbox", "cpu.cfs_period_us", "100000")

	for _, tc := range []struct {
		name  string
		inner string
		quota int64
		want  int64
	}{
		{name: "below the pod's quota", inner: "/kubepods/pod1/sandbox", quota: 150000, want: 150000},
		{name: "equal to the pod's quota", inner: "/kubepods/pod1/sandbox", quota: 200000, want: -1},
		{name: "above the pod's quota", inner: "/kubepods/pod1/sandbox", quota: 400000, want: -1},
		{name: "no quota asked", inner: "/kubepods/pod1/sandbox", quota: -1, want: -1},
		{name: "no ancestor quota", inner: "/kubepods/other", quota: 400000, want: 400000},
		{name: "ancestors not created yet", inner: "/veil/x/y", quota: 400000, want: 400000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := v1Quota(mnt, tc.inner, tc.quota)
			if err != nil || got != tc.want {
				t.Fatalf("v1Quota(%q, %d) = %d, %v; want %d", tc.inner, tc.quota, got, err, tc.want)
			}
		})
	}

	write("bad", "cpu.cfs_quota_us", "lots")
	write("bad", "cpu.cfs_period_us", "100000")
	if _, err := v1Quota(mnt, "/bad/x", 1000); err == nil || !strings.Contains(err.Error(), "read the CPU quota of") {
		t.Fatalf("v1Quota under an unreadable quota: %v; want an error", err)
	}
}
