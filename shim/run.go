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

	"github.com/veil-runtime/veil/shim/launcher"
	"github.com/veil-runtime/veil/shim/manager"
	"github.com/veil-runtime/veil/shim/task"
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
	registry.Register(&plugin.Registration{
		Type:     plugins.TTRPCPlugin,
		ID:       "task",
		Requires: []plugin.Type{plugins.EventPlugin, plugins.InternalPlugin},
		InitFn: func(ic *plugin.InitContext) (any, error) {
			return initTaskService(ic, newLauncher)
		},
	})
	cshim.RunShim(ctx, manager.New(cleanerFor), func(c *cshim.Config) {
		// The shim waits for its own children (virtiofsd, QEMU, ...) with
		// exec.Cmd; pkg/shim's reaper would reap them first and make
		// every VM look dead at once. Nothing runs as an orphan under
		// the shim, so it needs no subreaper either.
		c.NoReaper = true
		c.NoSubreaper = true
	})
}

// newLauncher is the launcher of real sandbox VMs, with the shim's config.
func newLauncher() (task.Launcher, error) { return launcher.New() }

// cleanerFor is what the `delete` action cleans a dead sandbox up with:
// the VM launcher of the config file the sandbox was started with.
func cleanerFor(configPath string) (manager.SandboxCleaner, error) {
	l, err := launcher.New()
	if err != nil {
		return nil, err
	}
	return l.ForConfig(configPath)
}

// initTaskService builds the task service from the publisher and shutdown
// plugins pkg/shim provides.
func initTaskService(ic *plugin.InitContext, newLauncher func() (task.Launcher, error)) (any, error) {
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
	} else if vl, ok := l.(*launcher.Launcher); ok {
		opts, _ := ctx.Value(cshim.OptsKey{}).(cshim.Opts)
		if lvl := vl.Config().LogLevel; lvl != "" && !opts.Debug {
			if err := log.SetLevel(lvl); err != nil {
				log.G(ctx).WithError(err).Warn("config log_level")
			}
		}
	}
	return task.NewService(ctx, l, pp.(task.Publisher), ss.(shutdown.Service)), nil
}

// brokenLauncher reports why no sandbox can start.
type brokenLauncher struct{ err error }

func (b brokenLauncher) Start(context.Context, string, task.SandboxOptions) (task.PodVM, error) {
	return nil, fmt.Errorf("veil config: %w", b.err)
}

func (b brokenLauncher) Cleanup(context.Context, string) error {
	return fmt.Errorf("veil config: %w", b.err)
}
