package shim

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// MERGE(runtime/sandbox): these test the adapter's stand-ins in
// launcher.go; runtime/sandbox carries the same cases for VMMPid and
// FitResources. Delete this file with the stand-ins.

func TestVMMPid(t *testing.T) {
	cases := []struct {
		name string
		pids map[string]int
		want uint32
	}{
		{name: "none"},
		{name: "qemu", pids: map[string]int{"qemu": 42, "virtiofsd": 43}, want: 42},
		{name: "helpers only", pids: map[string]int{"virtiofsd": 43}},
		{name: "cloud-hypervisor", pids: map[string]int{"cloud-hypervisor": 44, "virtiofsd": 43}, want: 44},
		{name: "unknown keys", pids: map[string]int{"hypervisor": 45, "vmm": 46}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := vmmPid(tc.pids); got != tc.want {
				t.Fatalf("got %d, want %d", got, tc.want)
			}
		})
	}
}

func TestWantedSize(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	u64 := func(v uint64) *uint64 { return &v }
	for _, tc := range []struct {
		name      string
		res       specs.LinuxResources
		wantCPUs  uint32
		wantMemMB uint64
	}{
		{"nothing", specs.LinuxResources{}, 0, 0},
		{"quota 1.5 cpus", specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(150000), Period: u64(100000)}}, 2, 0},
		{"unlimited quota", specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(-1), Period: u64(100000)}}, 0, 0},
		{"memory rounds up", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(512<<20 + 1)}}, 0, 513},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, m := wantedSize(&tc.res)
			if c != tc.wantCPUs || m != tc.wantMemMB {
				t.Fatalf("wantedSize = %d, %d; want %d, %d", c, m, tc.wantCPUs, tc.wantMemMB)
			}
		})
	}
}
