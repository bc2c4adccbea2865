package cgroup

import (
	"fmt"
	"os"

	"github.com/opencontainers/cgroups"
)

// Stats are the cgroup's usage counters.
type Stats struct {
	// MemoryBytes is the memory charged to the cgroup
	// (memory.usage_in_bytes on v1, memory.current on v2).
	MemoryBytes uint64
	// CPUNanos is the CPU time used (cpuacct.usage on v1, usage_usec of
	// cpu.stat on v2).
	CPUNanos uint64
	// NrPeriods and NrThrottled count the CFS periods with activity
	// and those in which the quota ran out (cpu.stat).
	NrPeriods   uint64
	NrThrottled uint64
	// Pids is the number of tasks (pids.current).
	Pids uint64
}

// Stats reads the cgroup's usage counters. A cgroup that is gone gives an
// error (os.ErrNotExist), not zeros.
func (c *Cgroup) Stats() (Stats, error) {
	dir := c.dirs["memory"]
	if c.v2 {
		dir = c.dirs[""]
	}
	if _, err := os.Stat(dir); err != nil {
		return Stats{}, fmt.Errorf("cgroup %s: stats: %w", c.path, err)
	}
	st, err := c.m.Stats(&cgroups.StatsOptions{Controllers: cgroups.Memory | cgroups.CPU | cgroups.Pids})
	if err != nil {
		return Stats{}, fmt.Errorf("cgroup %s: stats: %w", c.path, err)
	}
	return Stats{
		MemoryBytes: st.MemoryStats.Usage.Usage,
		CPUNanos:    st.CpuStats.CpuUsage.TotalUsage,
		NrPeriods:   st.CpuStats.ThrottlingData.Periods,
		NrThrottled: st.CpuStats.ThrottlingData.ThrottledPeriods,
		Pids:        st.PidsStats.Current,
	}, nil
}
