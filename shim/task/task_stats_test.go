package task

import (
	"testing"

	"github.com/veil-runtime/veil/agent/api"
)

func TestContainerMetrics(t *testing.T) {
	cases := []struct {
		name string
		in   *api.ContainerStats
	}{
		{name: "zero", in: &api.ContainerStats{}},
		{name: "filled", in: &api.ContainerStats{CpuUsageUsec: 10, CpuUserUsec: 7, CpuSystemUsec: 3, MemoryCurrentBytes: 4096, MemoryLimitBytes: 8192, PidsCurrent: 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := containerMetrics(tc.in)
			if m.CPU.UsageUsec != tc.in.CpuUsageUsec || m.CPU.UserUsec != tc.in.CpuUserUsec || m.CPU.SystemUsec != tc.in.CpuSystemUsec ||
				m.Memory.Usage != tc.in.MemoryCurrentBytes || m.Memory.UsageLimit != tc.in.MemoryLimitBytes || m.Pids.Current != tc.in.PidsCurrent {
				t.Fatalf("metrics %+v from %+v", m, tc.in)
			}
		})
	}
}
