package inspect

import (
	"fmt"

	"github.com/veil-runtime/veil/runtime/cgroup"
)

// CgroupStats reads the usage of sb's sandbox cgroup (its pod overhead
// and guest together, as the host charges them).
func (r *Reader) CgroupStats(sb SandboxInfo) (cgroup.Stats, error) {
	if sb.Cgroup == "" {
		return cgroup.Stats{}, fmt.Errorf("sandbox %s has no cgroup", sb.ID)
	}
	cg, err := cgroup.Load(sb.Cgroup)
	if err != nil {
		return cgroup.Stats{}, fmt.Errorf("sandbox %s: %w", sb.ID, err)
	}
	return cg.Stats()
}
