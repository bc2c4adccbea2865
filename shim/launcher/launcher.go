package launcher

import (
	"context"
	"path/filepath"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/sandbox"
	"github.com/veil-runtime/veil/runtime/statedir"
	"github.com/veil-runtime/veil/shim/bundle"
	"github.com/veil-runtime/veil/shim/task"
	"github.com/veil-runtime/veil/shim/telemetry"
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
		NetNSPath:     opts.NetNSPath,
		Hostname:      opts.Hostname,
		DNS:           opts.DNS,
		ShmSizeBytes:  opts.ShmSizeBytes,
		CgroupsPath:   opts.CgroupsPath,
		CRI:           opts.CRI,
		OOMScoreAdj:   opts.OOMScoreAdj,
		Pod:           bundle.PodOf(opts.Annotations),
		AgentObserver: opts.AgentObserver,
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

// StartReport is how the sandbox started, for the shim's telemetry.
func (s podVM) StartReport() (string, []telemetry.Stage) {
	var stages []telemetry.Stage
	for _, st := range s.StartStages() {
		stages = append(stages, telemetry.Stage{Name: st.Name, Took: st.Took})
	}
	return s.StartMode(), stages
}

// TelemetrySocket is where the shim serves its telemetry: in the
// sandbox's directory.
func (s podVM) TelemetrySocket() string { return filepath.Join(s.Dir(), statedir.ShimSocket) }

// Share is the sandbox's share, as the task service's own interface.
func (s podVM) Share() task.ContainerShare { return s.Sandbox.Share() }

// Agent hands out the sandbox's agent client as the task service's narrow
// ContainerAgent.
func (s podVM) Agent() task.ContainerAgent { return s.Sandbox.Agent() }
