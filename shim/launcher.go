package shim

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/sandbox"
)

// vmLauncher starts real sandbox VMs with runtime/sandbox.
type vmLauncher struct {
	cfg *config.Config
}

// newVMLauncher loads Veil's config ($VEIL_CONFIG, which containerd passes
// on to the shim, or the default file).
func newVMLauncher() (Launcher, error) {
	cfg, err := config.LoadDefault()
	if err != nil {
		return nil, err
	}
	return &vmLauncher{cfg: cfg}, nil
}

func (l *vmLauncher) Start(ctx context.Context, id string, opts SandboxOptions) (PodVM, error) {
	cfg, err := sandboxConfig(l.cfg, opts)
	if err != nil {
		return nil, err
	}
	sb, err := sandbox.Start(ctx, id, cfg, sandbox.Options{
		NetNSPath:    opts.NetNSPath,
		Hostname:     opts.Hostname,
		DNS:          opts.DNS,
		ShmSizeBytes: opts.ShmSizeBytes,
		CgroupsPath:  opts.CgroupsPath,
		CRI:          opts.CRI,
		OOMScoreAdj:  opts.OOMScoreAdj,
	})
	if err != nil {
		return nil, err
	}
	return vmSandbox{sb}, nil
}

// vmSandbox is a runtime/sandbox Sandbox as the shim sees it (PodVM).
type vmSandbox struct{ *sandbox.Sandbox }

// Share is the sandbox's share, as the shim's own interface.
func (s vmSandbox) Share() containerShare { return s.Sandbox.Share() }

// Agent hands out the sandbox's agent client as the shim's narrow
// ContainerAgent.
func (s vmSandbox) Agent() ContainerAgent { return s.Sandbox.Agent() }

// MERGE(runtime/sandbox): the four methods below stand in for
// sandbox.Sandbox's FitResources, Pause, Resume and VMMPid, which another
// part of issue 13 adds. Once merged, delete them (and vmmPid, wantedSize
// and resizer below, with launcher_test.go): the embedded *sandbox.Sandbox
// then provides them.

// FitResources (MERGE: replace with sandbox.Sandbox.FitResources) grows
// the VM for res with today's policy, moved here from update.go.
func (s vmSandbox) FitResources(ctx context.Context, res *specs.LinuxResources) error {
	return fitResources(ctx, s, s.Sandbox, res)
}

// Pause (MERGE: replace with sandbox.Sandbox.Pause) is not implemented yet.
func (s vmSandbox) Pause(context.Context) error {
	return fmt.Errorf("sandbox %s: pause: %w", s.ID(), errdefs.ErrNotImplemented)
}

// Resume (MERGE: replace with sandbox.Sandbox.Resume) is not implemented
// yet.
func (s vmSandbox) Resume(context.Context) error {
	return fmt.Errorf("sandbox %s: resume: %w", s.ID(), errdefs.ErrNotImplemented)
}

// VMMPid (MERGE: replace with sandbox.Sandbox.VMMPid).
func (s vmSandbox) VMMPid() int { return int(vmmPid(s.Pids())) }

// resizer is a sandbox that can grow its VM while it runs (MERGE: goes).
type resizer interface {
	Resize(ctx context.Context, vcpus uint32, memoryMiB uint64) error
}

// fitResources (MERGE: goes) hotplugs vCPUs and memory when res asks for
// more than the VM has: a CPU quota above the VM's vCPUs, or a memory
// limit above its memory.
func fitResources(ctx context.Context, sb PodVM, rs resizer, res *specs.LinuxResources) error {
	cfg := sb.Config()
	vcpus, mem := wantedSize(res)
	if vcpus <= cfg.Guest.VCPUs && mem <= uint64(cfg.Guest.MemoryMiB) {
		return nil
	}
	if err := rs.Resize(ctx, vcpus, mem); err != nil {
		if errdefs.IsNotImplemented(err) {
			log.G(ctx).WithError(err).Warn("limits exceed the VM's size: the VM's size bounds them")
			return nil
		}
		return fmt.Errorf("sandbox %s: hotplug to %d vCPUs, %d MiB: %w", sb.ID(), vcpus, mem, err)
	}
	return nil
}

// wantedSize (MERGE: goes) is the VM size a container's limits need:
// vCPUs enough for its CPU quota, and MiB enough for its memory limit (0
// when unlimited).
func wantedSize(res *specs.LinuxResources) (vcpus uint32, memoryMiB uint64) {
	if c := res.CPU; c != nil && c.Quota != nil && *c.Quota > 0 && c.Period != nil && *c.Period > 0 {
		q, p := uint64(*c.Quota), *c.Period
		vcpus = uint32((q + p - 1) / p)
	}
	if m := res.Memory; m != nil && m.Limit != nil && *m.Limit > 0 {
		memoryMiB = (uint64(*m.Limit) + (1<<20 - 1)) >> 20
	}
	return vcpus, memoryMiB
}

// vmmPid (MERGE: goes) returns the host pid that stands for the sandbox's
// processes (the hypervisor's), or 0 when unknown. Sandbox.Pids keys the
// VMM by its resolved hypervisor name.
func vmmPid(pids map[string]int) uint32 {
	for _, k := range []string{config.HypervisorQEMU, config.HypervisorCloudHypervisor} {
		if p, ok := pids[k]; ok && p > 0 {
			return uint32(p)
		}
	}
	return 0
}

func (l *vmLauncher) Cleanup(ctx context.Context, id string) error {
	return sandbox.Cleanup(ctx, l.cfg, id)
}

func (l *vmLauncher) StateDir() string { return l.cfg.StateDir }
