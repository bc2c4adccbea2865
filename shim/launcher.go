package shim

import (
	"context"

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

func (l *vmLauncher) Cleanup(ctx context.Context, id string) error {
	return sandbox.Cleanup(ctx, l.cfg, id)
}

func (l *vmLauncher) StateDir() string { return l.cfg.StateDir }
