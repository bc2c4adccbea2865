package sandbox

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/containerd/log"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/cleanup"
	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/console"
	"github.com/veil-runtime/veil/runtime/hypervisor"
	"github.com/veil-runtime/veil/runtime/statedir"
	"github.com/veil-runtime/veil/virtiofs"
)

// logTailLines is how much of a log an error message quotes.
const logTailLines = 15

// Start creates the sandbox id: its state directory, the shared directory,
// virtiofsd, the taps for the pod's network (when opts name a network
// namespace), the VM, and the agent connection, then asks the agent to set
// up the sandbox and its network. Every step is undone in reverse order
// when a later one fails, under a bounded context that the caller's
// cancellation does not reach; the error names the step and quotes the
// relevant logs.
func Start(ctx context.Context, id string, cfg *config.Config, opts Options) (*Sandbox, error) {
	dir, err := statedir.New(cfg.StateDir, id)
	if err != nil {
		return nil, err
	}
	return start(ctx, dir, cfg, opts, startSteps())
}

// startStep is one step of Start. run does it and returns how to undo
// it, nil when there is nothing to undo; a failing run leaves nothing of
// its own behind.
type startStep struct {
	// name says what the step does in Start's errors ("start VM").
	name string
	run  func(ctx context.Context, s *Sandbox, r *startRun) (undo func(context.Context) error, err error)
}

// startRun is what the steps of one Start hand each other besides the
// Sandbox's own fields.
type startRun struct {
	opts   Options
	launch time.Time
	hv     hypervisor.Hypervisor
	// ready is the listener for the agent's ready notification, and taps
	// the pod's opened taps: both are closed when Start returns.
	ready      *readyListener
	taps       []*os.File
	readyAfter time.Duration
}

func (r *startRun) close() {
	if r.ready != nil {
		_ = r.ready.Close()
	}
	closeFiles(r.taps)
}

// start runs steps in order; when one fails it undoes those done, in
// reverse order.
func start(ctx context.Context, dir statedir.Dir, cfg *config.Config, opts Options, steps []startStep) (_ *Sandbox, retErr error) {
	id := dir.ID()
	s := &Sandbox{id: id, cfg: cfg, dir: dir, stopping: make(chan struct{}), oomAdj: *oomOrZero(opts.OOMScoreAdj), observe: opts.AgentObserver}
	r := &startRun{opts: opts, launch: time.Now()}
	var undo cleanup.Stack
	// The undo's warnings name the sandbox.
	defer undo.OnError(log.WithLogger(ctx, logger(ctx, id)), &retErr)
	// The ready listener and the taps' descriptors close before a
	// rollback: taps are removed with nothing holding them.
	defer r.close()
	for _, st := range steps {
		began := time.Now()
		u, err := st.run(ctx, s, r)
		if err != nil {
			return nil, &StartError{ID: id, Step: st.name, Err: err}
		}
		s.recordStage(st.name, began, time.Now())
		if u != nil {
			undo.Push(st.name, u)
		}
	}
	logger(ctx, id).WithFields(map[string]any{"agent_ready": r.readyAfter, "total": time.Since(r.launch)}).Info("sandbox started")
	return s, nil
}

// StartError is a start that failed at one of its steps (rolled back).
type StartError struct {
	ID   string
	Step string
	Err  error
}

func (e *StartError) Error() string { return fmt.Sprintf("sandbox %s: %s: %v", e.ID, e.Step, e.Err) }
func (e *StartError) Unwrap() error { return e.Err }

// startSteps are Start's steps, in order.
func startSteps() []startStep {
	return []startStep{
		{"create sandbox dir", func(_ context.Context, s *Sandbox, _ *startRun) (func(context.Context) error, error) {
			if err := statedir.Create(s.dir); err != nil {
				return nil, err
			}
			return func(ctx context.Context) error { return statedir.Remove(ctx, s.dir) }, nil
		}},
		{"record the pod", recordPod},
		// The jail's uid and the sandbox cgroup, which every helper enters
		// before it runs.
		{"jail uid", func(_ context.Context, s *Sandbox, _ *startRun) (func(context.Context) error, error) {
			if err := s.leaseUID(); err != nil {
				return nil, err
			}
			return func(context.Context) error { return s.lease.Release() }, nil
		}},
		{"sandbox cgroup", func(ctx context.Context, s *Sandbox, r *startRun) (func(context.Context) error, error) {
			if err := s.createCgroup(ctx, r.opts); err != nil {
				return nil, err
			}
			return func(ctx context.Context) error {
				if s.cg == nil {
					return nil
				}
				return s.cg.Delete(ctx)
			}, nil
		}},
		{"create the share", func(ctx context.Context, s *Sandbox, _ *startRun) (func(context.Context) error, error) {
			share, err := statedir.CreateShare(ctx, s.dir)
			if err != nil {
				return nil, err
			}
			s.share = share
			return func(context.Context) error { return share.Close() }, nil
		}},
		{"start virtiofsd", startVirtiofsd},
		// A jailed VMM that connects to virtiofsd by path (Cloud
		// Hypervisor) must be allowed to; QEMU gets the connection from the
		// shim.
		{"give virtiofsd's socket to the jail uid", func(_ context.Context, s *Sandbox, _ *startRun) (func(context.Context) error, error) {
			if s.vmmOpensEndpoints() && s.uid() != 0 {
				return nil, os.Lchown(s.fsd.Socket(), int(s.uid()), int(s.uid()))
			}
			return nil, nil
		}},
		// The listener for the agent's ready notification, before the VM
		// can send it.
		{"helper directory", func(_ context.Context, s *Sandbox, _ *startRun) (func(context.Context) error, error) {
			_, err := statedir.CreateHelperDir(s.dir, s.uid(), s.uid())
			return nil, err
		}},
		{"listen for agent ready", func(ctx context.Context, s *Sandbox, r *startRun) (func(context.Context) error, error) {
			var err error
			r.ready, err = listenReady(ctx, s.vsockPath(), s.uid())
			return nil, err
		}},
		// The pod's network: a tap for each of its interfaces.
		{"attach network", func(ctx context.Context, s *Sandbox, r *startRun) (func(context.Context) error, error) {
			if r.opts.NetNSPath == "" {
				return nil, nil
			}
			if err := s.attachNetwork(ctx, r.opts.NetNSPath); err != nil {
				return nil, err
			}
			return s.net.Detach, nil
		}},
		// The host's bounded copy of the guest console.
		{"console", func(_ context.Context, s *Sandbox, _ *startRun) (func(context.Context) error, error) {
			cons, err := console.Create(s.consolePath(), s.cfg.Console.MaxBytes)
			if err != nil {
				return nil, err
			}
			s.cons = cons
			return func(context.Context) error { return cons.Close() }, nil
		}},
		{"open taps", func(ctx context.Context, s *Sandbox, r *startRun) (func(context.Context) error, error) {
			var err error
			r.taps, err = s.openTaps(ctx)
			return nil, err
		}},
		{"hypervisor", func(ctx context.Context, s *Sandbox, r *startRun) (func(context.Context) error, error) {
			hv, vmm, reason, err := newHypervisor(s.cfg)
			if err != nil {
				return nil, err
			}
			r.hv, s.vmm = hv, vmm
			logger(ctx, s.id).WithField("hypervisor", vmm).Info("hypervisor selected: " + reason)
			return nil, nil
		}},
		{"start VM", startVM},
		{"connect to agent", func(ctx context.Context, s *Sandbox, r *startRun) (func(context.Context) error, error) {
			if err := s.connectAgent(ctx, r.launch, r.ready.Ready()); err != nil {
				return nil, err
			}
			r.readyAfter = time.Since(r.launch)
			return func(context.Context) error { return s.agent.Close() }, nil
		}},
		// The guest side of the sandbox, then its network.
		{"CreateSandbox", func(ctx context.Context, s *Sandbox, r *startRun) (func(context.Context) error, error) {
			cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeouts.AgentDial.Duration)
			defer cancel()
			_, err := s.agent.CreateSandbox(cctx, &api.CreateSandboxRequest{SandboxId: s.id, Hostname: r.opts.Hostname, SharedFsTag: SharedFSTag, ShmSizeBytes: r.opts.ShmSizeBytes})
			if err != nil {
				return nil, fmt.Errorf("%w\n%s", err, s.diagnostics())
			}
			return nil, nil
		}},
		{"SetupNetwork", func(ctx context.Context, s *Sandbox, r *startRun) (func(context.Context) error, error) {
			if err := s.setupGuestNetwork(ctx, r.opts.DNS); err != nil {
				return nil, fmt.Errorf("%w\nconsole log:\n%s", err, console.Tail(s.consolePath(), logTailLines))
			}
			return nil, nil
		}},
		{"watch virtiofsd", func(ctx context.Context, s *Sandbox, _ *startRun) (func(context.Context) error, error) {
			go s.watchVirtiofsd(context.WithoutCancel(ctx))
			return nil, nil
		}},
	}
}

// recordPod writes the pod's names into the sandbox directory (the
// directory's removal takes them away).
func recordPod(_ context.Context, s *Sandbox, r *startRun) (func(context.Context) error, error) {
	return nil, statedir.WritePod(s.dir, r.opts.Pod)
}

// startVirtiofsd starts the share's server.
func startVirtiofsd(ctx context.Context, s *Sandbox, r *startRun) (func(context.Context) error, error) {
	fsd, err := virtiofs.Start(ctx, s.virtiofsConfig(r.opts.OOMScoreAdj))
	if err != nil {
		return nil, err
	}
	s.fsd = fsd
	s.share.SetServer(fsd)
	return fsd.Stop, nil
}

// virtiofsConfig is how the sandbox runs virtiofsd.
func (s *Sandbox) virtiofsConfig(oom *int) virtiofs.Config {
	return virtiofs.Config{
		Path:         s.cfg.Virtiofs.Path,
		SharedDir:    s.dir.SharedDir(),
		Dir:          s.dir.Path(),
		Cache:        s.cfg.Virtiofs.Cache,
		Jail:         s.virtiofsdJail(oom),
		RlimitNofile: s.cfg.Virtiofs.RlimitNofile,
		Cgroup:       s.placer(),
	}
}

// startVM starts the VM the selected hypervisor runs, within
// timeouts.vm_start.
func startVM(ctx context.Context, s *Sandbox, r *startRun) (func(context.Context) error, error) {
	tsc, err := hypervisor.HostTSCKHz()
	if err != nil {
		logger(ctx, s.id).WithError(err).Warn("host TSC rate unknown: guest boots without tsc_early_khz")
	}
	vmctx, cancel := context.WithTimeout(ctx, s.cfg.Timeouts.VMStart.Duration)
	defer cancel()
	vmcfg := s.vmConfig(hypervisor.Cmdline(tsc, s.cfg.Guest.KernelParams))
	vmcfg.NetNSPath = r.opts.NetNSPath
	if vmcfg.NetNSPath == "" && s.net != nil {
		// A warm pool VM's NICs wait in its keeper's namespace.
		vmcfg.NetNSPath = s.net.NetNSPath
	}
	vmcfg.NICs = s.nics(r.taps)
	vmcfg.Console = s.cons
	vmcfg.Jail = s.vmmJail(r.opts.OOMScoreAdj)
	vm, err := r.hv.Start(vmctx, vmcfg)
	if err != nil {
		return nil, fmt.Errorf("%w\nvirtiofsd log:\n%s", err, s.fsd.LogTail())
	}
	s.vm = vm
	return vm.Stop, nil
}

// vmConfig is the part of the VM's configuration that follows from the
// sandbox's config and directory alone.
func (s *Sandbox) vmConfig(cmdline string) hypervisor.VMConfig {
	return hypervisor.VMConfig{
		ID:          s.id,
		Dir:         s.dir.Path(),
		Kernel:      s.cfg.Guest.Kernel,
		Initrd:      s.cfg.Guest.Initrd,
		Cmdline:     cmdline,
		VCPUs:       s.cfg.Guest.VCPUs,
		MemoryMiB:   s.cfg.Guest.MemoryMiB,
		VsockSocket: s.vsockPath(),
		Filesystems: []hypervisor.Filesystem{{Tag: SharedFSTag, Socket: s.fsd.Socket()}},
		Cgroup:      s.placer(),
	}
}
