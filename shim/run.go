package shim

import (
	"context"
	"fmt"

	cshim "github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/log"
	"github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"
	"golang.org/x/sys/unix"
)

// Run is the shim binary: it registers the task service with pkg/shim's
// plugin registry and hands over to pkg/shim, which dispatches the
// `start`/`delete` actions or serves the task API.
func Run(ctx context.Context) {
	// containerd hands the serving shim its socket as fd 3 without
	// close-on-exec, and pkg/shim keeps that descriptor open. Unmarked, it
	// would leak into QEMU, virtiofsd and vhost-device-vsock, which would
	// then keep the dead shim's socket accepting connections and make its
	// cleanup (`delete`) think the shim still lives.
	unix.CloseOnExec(3)
	newLauncher := newVMLauncher
	registry.Register(&plugin.Registration{
		Type:     plugins.TTRPCPlugin,
		ID:       "task",
		Requires: []plugin.Type{plugins.EventPlugin, plugins.InternalPlugin},
		InitFn: func(ic *plugin.InitContext) (any, error) {
			return initTaskService(ic, newLauncher)
		},
	})
	cshim.RunShim(ctx, newManager(newLauncher), func(c *cshim.Config) {
		// The shim waits for its own children (virtiofsd, QEMU, ...) with
		// exec.Cmd; pkg/shim's reaper would reap them first and make
		// every VM look dead at once. Nothing runs as an orphan under
		// the shim, so it needs no subreaper either.
		c.NoReaper = true
		c.NoSubreaper = true
	})
}

// initTaskService builds the task service from the publisher and shutdown
// plugins pkg/shim provides.
func initTaskService(ic *plugin.InitContext, newLauncher func() (Launcher, error)) (any, error) {
	pp, err := ic.GetByID(plugins.EventPlugin, "publisher")
	if err != nil {
		return nil, fmt.Errorf("event publisher: %w", err)
	}
	ss, err := ic.GetByID(plugins.InternalPlugin, "shutdown")
	if err != nil {
		return nil, fmt.Errorf("shutdown service: %w", err)
	}
	ctx := ic.Context
	l, err := newLauncher()
	if err != nil {
		// Reported on Create, where ctr shows it; the shim still serves so
		// that containerd can clean up.
		log.G(ctx).WithError(err).Error("load veil config")
		l = brokenLauncher{err: err}
	} else if vl, ok := l.(*vmLauncher); ok {
		opts, _ := ctx.Value(cshim.OptsKey{}).(cshim.Opts)
		if lvl := vl.cfg.LogLevel; lvl != "" && !opts.Debug {
			if err := log.SetLevel(lvl); err != nil {
				log.G(ctx).WithError(err).Warn("config log_level")
			}
		}
	}
	return newService(ctx, l, pp.(publisher), ss.(shutdown.Service)), nil
}

// brokenLauncher reports why no sandbox can start.
type brokenLauncher struct{ err error }

func (b brokenLauncher) Start(context.Context, string, SandboxOptions) (PodVM, error) {
	return nil, fmt.Errorf("veil config: %w", b.err)
}

func (b brokenLauncher) Cleanup(context.Context, string) error {
	return fmt.Errorf("veil config: %w", b.err)
}

func (b brokenLauncher) StateDir() string { return "" }
