package launcher

import (
	"context"
	"errors"
	"path/filepath"
	"time"

	"github.com/containerd/log"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/sandbox"
	"github.com/veil-runtime/veil/runtime/statedir"
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

// Start boots sandbox id with the config sandboxConfig resolves: from
// the warm pool when it can, else cold. Each attempt goes into the
// node's start journal (statedir.AppendStart).
func (l *Launcher) Start(ctx context.Context, id string, opts task.SandboxOptions) (task.PodVM, error) {
	began := time.Now()
	cfg, err := sandboxConfig(l.cfg, opts)
	if err != nil {
		journal(ctx, l.cfg.StateDir, id, sandbox.StartCold, began, nil, &sandbox.StartError{ID: id, Step: "config", Err: err})
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
	sb, failed := startWarm(ctx, id, cfg, sbopts)
	if sb != nil || failed != nil {
		journal(ctx, cfg.StateDir, id, sandbox.StartWarm, began, sb, failed)
	}
	if sb != nil {
		return podVM{sb}, nil
	}
	began = time.Now()
	sb, err = sandbox.Start(ctx, id, cfg, sbopts)
	journal(ctx, cfg.StateDir, id, sandbox.StartCold, began, sb, err)
	if err != nil {
		return nil, err
	}
	return podVM{sb}, nil
}

// journal records a start attempt in stateDir's start journal; a journal
// that cannot be written costs the metrics, not the pod.
func journal(ctx context.Context, stateDir, id, mode string, began time.Time, sb *sandbox.Sandbox, err error) {
	rec := statedir.StartRecord{Sandbox: id, Mode: mode, OK: err == nil, Seconds: time.Since(began).Seconds()}
	if err != nil {
		rec.Step = "other"
		var serr *sandbox.StartError
		if errors.As(err, &serr) {
			rec.Step = serr.Step
		}
	} else if sb != nil {
		for _, st := range sb.StartStages() {
			rec.Stages = append(rec.Stages, statedir.StartStage{Name: st.Name, Seconds: st.Took.Seconds()})
		}
	}
	if err := statedir.AppendStart(stateDir, rec); err != nil {
		log.G(ctx).WithError(err).WithField("sandbox", id).Warn("start not journalled")
	}
}

// Cleanup removes whatever a crashed shim left of sandbox id under the
// config's state_dir.
func (l *Launcher) Cleanup(ctx context.Context, id string) error {
	return sandbox.Cleanup(ctx, l.cfg, id)
}

// podVM is a runtime/sandbox Sandbox as the task service sees it
// (task.PodVM).
type podVM struct{ *sandbox.Sandbox }

// TelemetrySocket is where the shim serves its telemetry: in the
// sandbox's directory.
func (s podVM) TelemetrySocket() string { return filepath.Join(s.Dir(), statedir.ShimSocket) }

// Share is the sandbox's share, as the task service's own interface.
func (s podVM) Share() task.ContainerShare { return s.Sandbox.Share() }

// Agent hands out the sandbox's agent client as the task service's narrow
// ContainerAgent.
func (s podVM) Agent() task.ContainerAgent { return s.Sandbox.Agent() }
