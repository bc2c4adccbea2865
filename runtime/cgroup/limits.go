package cgroup

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/opencontainers/cgroups"
)

// Limits of a sandbox cgroup.
type Limits struct {
	MemoryBytes int64   // 0: no limit
	Pids        int64   // 0: no limit
	CPUs        float64 // quota in CPUs over a 100ms period; 0: no limit
}

const (
	// cpuPeriod is the CFS period, in microseconds, of the CPU quota.
	cpuPeriod = 100000
	// minCPUQuota is the smallest quota the kernel takes (1 ms).
	minCPUQuota = 1000
)

func (l Limits) validate() error {
	switch {
	case l.MemoryBytes < 0:
		return fmt.Errorf("memory limit %d is negative", l.MemoryBytes)
	case l.Pids < 0:
		return fmt.Errorf("pids limit %d is negative", l.Pids)
	case l.CPUs < 0 || math.IsNaN(l.CPUs) || math.IsInf(l.CPUs, 0):
		return fmt.Errorf("CPU limit %v is not a number of CPUs", l.CPUs)
	case l.CPUs > 0 && l.CPUs*cpuPeriod > math.MaxInt32:
		return fmt.Errorf("CPU limit %v is too large", l.CPUs)
	}
	return nil
}

// cpuQuota is l's CFS quota in microseconds per cpuPeriod, -1 for none.
// A quota below the kernel's minimum (1 ms) is raised to it.
func (l Limits) cpuQuota() int64 {
	if l.CPUs == 0 {
		return -1
	}
	return max(int64(math.Round(l.CPUs*cpuPeriod)), minCPUQuota)
}

// resources turns l into the library's resources. Every limit is written,
// a missing one as "no limit" (-1, "max"), so that Update can lift one.
// Devices are skipped: see the package doc. A memory limit at or below
// the current usage is refused on v2 as the kernel refuses it on v1
// (EBUSY), instead of v2's reclaim and OOM kill of the VM.
func (l Limits) resources() *cgroups.Resources {
	r := &cgroups.Resources{
		SkipDevices:             true,
		MemoryCheckBeforeUpdate: true,
		Memory:                  -1,
		CpuQuota:                l.cpuQuota(),
		CpuPeriod:               cpuPeriod,
	}
	if l.MemoryBytes > 0 {
		r.Memory = l.MemoryBytes
	}
	pids := int64(-1)
	if l.Pids > 0 {
		pids = l.Pids
	}
	r.PidsLimit = &pids
	return r
}

// v1Quota is the cpu.cfs_quota_us to write on cgroup v1 for quota (per
// cpuPeriod) in the cgroup at inner (its path below the hierarchy's
// mount point mnt). v1 refuses, with EINVAL, a child quota above an
// ancestor's (as a ratio to its period), and refuses lowering an ancestor
// below a child's. So when an ancestor already allows no more than quota,
// the cgroup gets none of its own (-1): the ancestor bounds it as tightly,
// and the kubelet can still lower the pod's quota.
func v1Quota(mnt, inner string, quota int64) (int64, error) {
	if quota < 0 {
		return quota, nil
	}
	for dir := filepath.Dir(inner); ; dir = filepath.Dir(dir) {
		aq, ap, err := readV1Quota(filepath.Join(mnt, dir))
		if err != nil {
			return 0, err
		}
		// aq/ap <= quota/cpuPeriod, in integers (both fit in 32 bits).
		if aq > 0 && ap > 0 && aq*cpuPeriod <= quota*ap {
			return -1, nil
		}
		if dir == "/" {
			return quota, nil
		}
	}
}

// readV1Quota reads cpu.cfs_quota_us and cpu.cfs_period_us in dir; a
// missing directory has no quota.
func readV1Quota(dir string) (quota, period int64, err error) {
	read := func(file string) (int64, error) {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			return 0, err
		}
		return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	}
	if quota, err = read("cpu.cfs_quota_us"); err == nil {
		period, err = read("cpu.cfs_period_us")
	}
	if errors.Is(err, os.ErrNotExist) {
		return -1, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("read the CPU quota of %s: %w", dir, err)
	}
	return quota, period, nil
}
