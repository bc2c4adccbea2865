package sandbox

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/hypervisor"
)

// onlineTimeout bounds the agent's onlining of new vCPUs.
const onlineTimeout = 10 * time.Second

// Resize grows the VM to at least vcpus and memoryMiB (0 leaves a value
// alone) by hotplug, bounded by guest.max_vcpus and
// guest.hotplug_memory_mib, and has the agent online new vCPUs; it never
// shrinks the VM. It fails with NotImplemented when the hypervisor cannot
// grow what is asked (QEMU adds vCPUs it holds in reserve, never memory).
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
	err := r.Resize(ctx, want)
	if errdefs.IsNotImplemented(err) && want.MemoryMiB > cur.MemoryMiB && want.VCPUs > cur.VCPUs {
		// The VMM can add vCPUs but not memory: take what it can.
		log.G(ctx).WithError(err).Warn("memory cannot grow; adding vCPUs only")
		want.MemoryMiB = cur.MemoryMiB
		err = r.Resize(ctx, want)
	}
	if err != nil {
		return fmt.Errorf("sandbox %s: resize to %d vCPUs, %d MiB: %w", s.id, want.VCPUs, want.MemoryMiB, err)
	}
	// The host grants the grown VM its CPU and memory before the guest
	// uses them: the cgroup's quota follows the vCPUs the host onlined,
	// not those the guest could online itself.
	if s.cg != nil {
		if err := s.cg.Update(s.limits(want.VCPUs, uint64(want.MemoryMiB))); err != nil {
			return fmt.Errorf("sandbox %s: grow the sandbox cgroup to %d vCPUs, %d MiB: %w", s.id, want.VCPUs, want.MemoryMiB, err)
		}
	}
	if want.VCPUs > cur.VCPUs && s.agent != nil {
		// New vCPUs come up offline: the guest runs no udev.
		actx, cancel := context.WithTimeout(ctx, onlineTimeout)
		resp, err := s.agent.OnlineCPUs(actx, &api.OnlineCPUsRequest{Count: want.VCPUs})
		cancel()
		if err != nil {
			return fmt.Errorf("sandbox %s: online %d vCPUs in the guest: %w", s.id, want.VCPUs, err)
		}
		log.G(ctx).WithFields(log.Fields{"sandbox": s.id, "online": resp.Online}).Info("guest vCPUs online")
	}
	s.size = want
	log.G(ctx).WithFields(log.Fields{"sandbox": s.id, "vcpus": want.VCPUs, "memory_mib": want.MemoryMiB}).Info("VM resized")
	return nil
}
