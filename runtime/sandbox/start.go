package sandbox

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/containerd/ttrpc"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/console"
	"github.com/veil-runtime/veil/runtime/hypervisor"
	"github.com/veil-runtime/veil/runtime/statedir"
	"github.com/veil-runtime/veil/runtime/vsock"
	"github.com/veil-runtime/veil/virtiofs"
)

const (
	// dialInterval paces the agent dial attempts once the agent said it
	// serves.
	dialInterval = 20 * time.Millisecond
	// attemptTimeout bounds one dial + Health attempt.
	attemptTimeout = 2 * time.Second
	// rollbackTimeout bounds the cleanup of a failed start.
	rollbackTimeout = 15 * time.Second
	// vmmExitGrace is how long a VMM may take to exit after virtiofsd saw
	// it disconnect, before virtiofsd's exit counts as its own failure.
	vmmExitGrace = 2 * time.Second
	// logTailLines is how much of a log an error message quotes.
	logTailLines = 15
)

// Start creates the sandbox id: its state directory, the shared directory,
// virtiofsd, the taps for the pod's network (when opts name a network
// namespace), the VM, and the agent connection, then asks the agent to set
// up the sandbox and its network. Every step is undone in reverse order
// when a later one fails; the error names the step and quotes the
// relevant logs.
func Start(ctx context.Context, id string, cfg *config.Config, opts Options) (_ *Sandbox, retErr error) {
	dir, err := statedir.New(cfg.StateDir, id)
	if err != nil {
		return nil, err
	}
	launch := time.Now()
	s := &Sandbox{id: id, cfg: cfg, dir: dir, stopping: make(chan struct{}), oomAdj: *oomOrZero(opts.OOMScoreAdj)}
	lg := logger(ctx, id)

	var undo []func(context.Context) error
	defer func() {
		if retErr == nil {
			return
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
		defer cancel()
		for i := len(undo) - 1; i >= 0; i-- {
			if err := undo[i](rctx); err != nil {
				lg.WithError(err).Warn("rollback of failed sandbox start")
			}
		}
	}()
	fail := func(step string, err error) error {
		return fmt.Errorf("sandbox %s: %s: %w", id, step, err)
	}

	// 1. State directory.
	if err := statedir.Create(dir); err != nil {
		return nil, fail("create sandbox dir", err)
	}
	undo = append(undo, func(ctx context.Context) error { return statedir.Remove(ctx, dir) })

	// 2. The jail's uid and the sandbox cgroup, which every helper
	// enters before it runs.
	if err := s.leaseUID(); err != nil {
		return nil, fail("jail uid", err)
	}
	undo = append(undo, func(context.Context) error { return s.lease.Release() })
	if err := s.createCgroup(ctx, opts); err != nil {
		return nil, fail("sandbox cgroup", err)
	}
	undo = append(undo, func(ctx context.Context) error {
		if s.cg == nil {
			return nil
		}
		return s.cg.Delete(ctx)
	})

	// The share.
	share, err := statedir.CreateShare(dir)
	if err != nil {
		return nil, fail("create the share", err)
	}
	s.share = share
	undo = append(undo, func(context.Context) error { return share.Close() })

	// 3. virtiofsd.
	fsd, err := virtiofs.Start(ctx, virtiofs.Config{
		Path:         cfg.Virtiofs.Path,
		SharedDir:    dir.SharedDir(),
		Dir:          dir.Path(),
		Cache:        cfg.Virtiofs.Cache,
		Jail:         s.virtiofsdJail(opts.OOMScoreAdj),
		RlimitNofile: cfg.Virtiofs.RlimitNofile,
		Cgroup:       s.placer(),
	})
	if err != nil {
		return nil, fail("start virtiofsd", err)
	}
	s.fsd = fsd
	share.SetServer(fsd)
	undo = append(undo, fsd.Stop)
	// A jailed VMM that connects to virtiofsd by path (Cloud Hypervisor)
	// must be allowed to; QEMU gets the connection from the shim.
	if s.vmmOpensEndpoints() && s.uid() != 0 {
		if err := os.Lchown(fsd.Socket(), int(s.uid()), int(s.uid())); err != nil {
			return nil, fail("give virtiofsd's socket to the jail uid", err)
		}
	}

	// 4. The listener for the agent's ready notification, before the VM
	// can send it.
	if _, err := statedir.CreateHelperDir(dir, s.uid(), s.uid()); err != nil {
		return nil, fail("helper directory", err)
	}
	ready, err := listenReady(ctx, s.vsockPath(), s.uid())
	if err != nil {
		return nil, fail("listen for agent ready", err)
	}
	defer func() { _ = ready.Close() }()

	// 5. The pod's network: a tap for each of its interfaces.
	if opts.NetNSPath != "" {
		if err := s.attachNetwork(ctx, opts.NetNSPath); err != nil {
			return nil, fail("attach network", err)
		}
		undo = append(undo, s.net.Detach)
	}

	// The host's bounded copy of the guest console.
	s.cons, err = console.Create(s.consolePath(), cfg.Console.MaxBytes)
	if err != nil {
		return nil, fail("console", err)
	}
	undo = append(undo, func(context.Context) error { return s.cons.Close() })
	taps, err := s.openTaps(ctx)
	if err != nil {
		return nil, fail("open taps", err)
	}
	defer closeFiles(taps)

	// 6. The VM.
	hv, vmm, reason, err := newHypervisor(cfg)
	if err != nil {
		return nil, fail("hypervisor", err)
	}
	s.vmm = vmm
	lg.WithField("hypervisor", vmm).Info("hypervisor selected: " + reason)
	tsc, err := hypervisor.HostTSCKHz()
	if err != nil {
		lg.WithError(err).Warn("host TSC rate unknown: guest boots without tsc_early_khz")
	}
	vmctx, cancel := context.WithTimeout(ctx, cfg.Timeouts.VMStart.Duration)
	vm, err := hv.Start(vmctx, hypervisor.VMConfig{
		ID:          id,
		Dir:         dir.Path(),
		Kernel:      cfg.Guest.Kernel,
		Initrd:      cfg.Guest.Initrd,
		Cmdline:     hypervisor.Cmdline(tsc, cfg.Guest.KernelParams),
		VCPUs:       cfg.Guest.VCPUs,
		MemoryMiB:   cfg.Guest.MemoryMiB,
		VsockSocket: s.vsockPath(),
		Filesystems: []hypervisor.Filesystem{{Tag: SharedFSTag, Socket: fsd.Socket()}},
		NetNSPath:   opts.NetNSPath,
		NICs:        s.nics(taps),
		Console:     s.cons,
		Jail:        s.vmmJail(opts.OOMScoreAdj),
		Cgroup:      s.placer(),
	})
	cancel()
	if err != nil {
		return nil, fail("start VM", fmt.Errorf("%w\nvirtiofsd log:\n%s", err, fsd.LogTail()))
	}
	s.vm = vm
	undo = append(undo, vm.Stop)

	// 7. The agent.
	if err := s.connectAgent(ctx, launch, ready.Ready()); err != nil {
		return nil, fail("connect to agent", err)
	}
	undo = append(undo, func(context.Context) error { return s.client.Close() })
	readyAfter := time.Since(launch)

	// 8. The guest side of the sandbox, then its network.
	cctx, cancel := context.WithTimeout(ctx, cfg.Timeouts.AgentDial.Duration)
	_, err = s.agent.CreateSandbox(cctx, &api.CreateSandboxRequest{SandboxId: id, Hostname: opts.Hostname, SharedFsTag: SharedFSTag, ShmSizeBytes: opts.ShmSizeBytes})
	cancel()
	if err != nil {
		return nil, fail("CreateSandbox", fmt.Errorf("%w\n%s", err, s.diagnostics()))
	}
	if err := s.setupGuestNetwork(ctx, opts.DNS); err != nil {
		return nil, fail("SetupNetwork", fmt.Errorf("%w\nconsole log:\n%s", err, console.Tail(s.consolePath(), logTailLines)))
	}

	go s.watchVirtiofsd(context.WithoutCancel(ctx))
	lg.WithFields(map[string]any{"agent_ready": readyAfter, "total": time.Since(launch)}).Info("sandbox started")
	return s, nil
}

// connectAgent waits for the agent's ready notification, then dials it
// until Health answers, all within the agent dial timeout counted from
// launch; it fails at once when the VM or virtiofsd dies.
//
// The host never dials a guest port that has no listener yet: measured
// with vhost-device-vsock 0.3.0, such a refused connection now and then
// leaves the device deaf to every later one (about 1 boot in 12).
func (s *Sandbox) connectAgent(ctx context.Context, launch time.Time, ready <-chan struct{}) error {
	dctx, cancel := context.WithDeadline(ctx, launch.Add(s.cfg.Timeouts.AgentDial.Duration))
	defer cancel()
	lg := logger(ctx, s.id)
	select {
	case <-ready:
		lg.WithField("after", time.Since(launch).Round(time.Millisecond)).Debug("agent reported ready")
	case <-s.vm.Done():
		return fmt.Errorf("VM exited before the agent reported ready\n%s", s.diagnostics())
	case <-s.fsd.Done():
		return fmt.Errorf("virtiofsd exited: %w\n%s", s.fsd.ExitError(), s.diagnostics())
	case <-dctx.Done():
		return fmt.Errorf("agent did not report ready on vsock port %d within %s: %w\n%s",
			api.ReadyPort, time.Since(launch).Round(time.Millisecond), dctx.Err(), s.diagnostics())
	}
	t := time.NewTicker(dialInterval)
	defer t.Stop()
	var lastErr error
	for attempt := 1; ; attempt++ {
		client, agent, err := s.dialAgent(dctx)
		if err == nil {
			s.client, s.agent = client, agent
			lg.WithField("attempts", attempt).Debug("agent answered")
			return nil
		}
		lastErr = err
		select {
		case <-s.vm.Done():
			return fmt.Errorf("VM exited before the agent answered (last: %w)\n%s", lastErr, s.diagnostics())
		case <-s.fsd.Done():
			return fmt.Errorf("virtiofsd exited: %w\n%s", s.fsd.ExitError(), s.diagnostics())
		case <-dctx.Done():
			return fmt.Errorf("no answer after %d attempts in %s: %w (last: %w)\n%s",
				attempt, time.Since(launch).Round(time.Millisecond), dctx.Err(), lastErr, s.diagnostics())
		case <-t.C:
		}
	}
}

// dialAgent makes one bounded attempt: connect to the agent port and ask
// for Health.
func (s *Sandbox) dialAgent(ctx context.Context) (*ttrpc.Client, api.AgentService, error) {
	actx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	conn, err := vsock.Dial(actx, s.vsockPath(), api.AgentPort)
	if err != nil {
		return nil, nil, err
	}
	client := ttrpc.NewClient(conn, ttrpc.WithUnaryClientInterceptor(boundRequests(s.cfg.Timeouts.AgentRequest.Duration)))
	agent := api.NewAgentClient(client)
	h, err := agent.Health(actx, &api.HealthRequest{})
	if err != nil {
		_ = client.Close()
		return nil, nil, fmt.Errorf("health: %w", err)
	}
	if h.ApiVersion != api.APIVersion {
		_ = client.Close()
		return nil, nil, fmt.Errorf("agent %s speaks API version %d, want %d", h.AgentVersion, h.ApiVersion, api.APIVersion)
	}
	return client, agent, nil
}

// diagnostics quotes the logs that explain a failed start.
func (s *Sandbox) diagnostics() string {
	var out string
	if s.vm != nil {
		if lt, ok := s.vm.(hypervisor.LogTailer); ok {
			out += "VMM log:\n" + lt.LogTail() + "\n"
		}
	}
	out += "console log:\n" + console.Tail(s.consolePath(), logTailLines)
	if s.fsd != nil {
		out += "\nvirtiofsd log:\n" + s.fsd.LogTail()
	}
	return out
}

// watchVirtiofsd stops the VM when virtiofsd dies under it: the guest's
// filesystem is gone, and Done tells the owner. virtiofsd also exits when
// a dying VMM closes its socket; that case is told apart by the VMM's exit
// following within vmmExitGrace.
func (s *Sandbox) watchVirtiofsd(ctx context.Context) {
	select {
	case <-s.stopping:
		return
	case <-s.vm.Done():
		return
	case <-s.fsd.Done():
	}
	t := time.NewTimer(vmmExitGrace)
	defer t.Stop()
	select {
	case <-s.stopping:
		return
	case <-s.vm.Done():
		return
	case <-t.C:
	}
	lg := logger(ctx, s.id)
	lg.WithError(s.fsd.ExitError()).Error("virtiofsd died: stopping the VM")
	sctx, cancel := context.WithTimeout(ctx, rollbackTimeout)
	defer cancel()
	if err := s.vm.Stop(sctx); err != nil {
		lg.WithError(err).Warn("stop VM after virtiofsd died")
	}
}
