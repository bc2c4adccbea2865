package launcher

import (
	"context"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/sandbox"
	"github.com/veil-runtime/veil/shim/bundle"
	"github.com/veil-runtime/veil/shim/task"
)

// Launcher starts real sandbox VMs with runtime/sandbox (task.Launcher).
type Launcher struct {
	cfg *config.Config
}

// New loads Veil's config ($VEIL_CONFIG, which containerd passes on to
// the shim, or the default file).
func New() (*Launcher, error) {
	cfg, err := config.LoadDefault()
	if err != nil {
		return nil, err
	}
	return &Launcher{cfg: cfg}, nil
}

// Config is the shim's own configuration, before a sandbox's ConfigPath
// and annotations.
func (l *Launcher) Config() *config.Config { return l.cfg }

// Start boots sandbox id with the config sandboxConfig resolves.
func (l *Launcher) Start(ctx context.Context, id string, opts task.SandboxOptions) (task.PodVM, error) {
	cfg, err := sandboxConfig(l.cfg, opts)
	if err != nil {
		return nil, err
	}
	sbopts := sandbox.Options{
		NetNSPath:    opts.NetNSPath,
		Hostname:     opts.Hostname,
		DNS:          opts.DNS,
		ShmSizeBytes: opts.ShmSizeBytes,
		CgroupsPath:  opts.CgroupsPath,
		CRI:          opts.CRI,
		OOMScoreAdj:  opts.OOMScoreAdj,
		Pod:          bundle.PodOf(opts.Annotations),
	}
	if sb := startWarm(ctx, id, cfg, sbopts); sb != nil {
		return podVM{sb}, nil
	}
	sb, err := sandbox.Start(ctx, id, cfg, sbopts)
	if err != nil {
		return nil, err
	}
	return podVM{sb}, nil
}

// Cleanup removes whatever a crashed shim left of sandbox id under the
// config's state_dir.
func (l *Launcher) Cleanup(ctx context.Context, id string) error {
	return sandbox.Cleanup(ctx, l.cfg, id)
}

// podVM is a runtime/sandbox Sandbox as the task service sees it
// (task.PodVM).
type podVM struct{ *sandbox.Sandbox }

// Share is the sandbox's share, as the task service's own interface.
func (s podVM) Share() task.ContainerShare { return s.Sandbox.Share() }

// Agent hands out the sandbox's agent client as the task service's narrow
// ContainerAgent.
func (s podVM) Agent() task.ContainerAgent { return s.Sandbox.Agent() }
