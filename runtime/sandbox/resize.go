package sandbox

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"

	"github.com/veil-runtime/veil/runtime/hypervisor"
)

// Resize grows the VM to at least vcpus and memoryMiB (0 leaves a value
// alone) by hotplug; it never shrinks it. It fails with NotImplemented
// when the hypervisor cannot hotplug (QEMU's microvm).
func (s *Sandbox) Resize(ctx context.Context, vcpus uint32, memoryMiB uint64) error {
	r, ok := s.vm.(hypervisor.Resizer)
	if !ok {
		return fmt.Errorf("sandbox %s: hypervisor %s cannot hotplug vCPUs or memory: %w", s.id, s.vmm, errdefs.ErrNotImplemented)
	}
	s.resizeMu.Lock()
	defer s.resizeMu.Unlock()
	cur := s.size
	if cur.VCPUs == 0 {
		cur = hypervisor.Resize{VCPUs: s.cfg.Guest.VCPUs, MemoryMiB: s.cfg.Guest.MemoryMiB}
	}
	want := cur
	if vcpus > want.VCPUs {
		want.VCPUs = vcpus
	}
	if memoryMiB > uint64(want.MemoryMiB) {
		if memoryMiB > 1<<31 {
			return fmt.Errorf("sandbox %s: %d MiB of memory is more than a VM can have: %w", s.id, memoryMiB, errdefs.ErrInvalidArgument)
		}
		want.MemoryMiB = uint32(memoryMiB)
	}
	// Never beyond what the VM was created able to reach.
	if maxCPUs := max(s.cfg.Guest.MaxVCPUs, s.cfg.Guest.VCPUs); want.VCPUs > maxCPUs {
		want.VCPUs = maxCPUs
	}
	if maxMem := s.cfg.Guest.MemoryMiB + s.cfg.Guest.HotplugMemoryMiB; want.MemoryMiB > maxMem {
		want.MemoryMiB = maxMem
	}
	if want == cur {
		if vcpus > cur.VCPUs || memoryMiB > uint64(cur.MemoryMiB) {
			log.G(ctx).WithFields(log.Fields{"sandbox": s.id, "vcpus": vcpus, "memory_mib": memoryMiB}).
				Warn("limits exceed guest.max_vcpus / guest.hotplug_memory_mib: the VM stays at its size")
		}
		return nil
	}
	if err := r.Resize(ctx, want); err != nil {
		return fmt.Errorf("sandbox %s: resize to %d vCPUs, %d MiB: %w", s.id, want.VCPUs, want.MemoryMiB, err)
	}
	s.size = want
	log.G(ctx).WithFields(log.Fields{"sandbox": s.id, "vcpus": want.VCPUs, "memory_mib": want.MemoryMiB}).Info("VM resized")
	return nil
}
