package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/cgroup"
	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/hypervisor"
	"github.com/veil-runtime/veil/runtime/network"
	"github.com/veil-runtime/veil/runtime/statedir"
	"github.com/veil-runtime/veil/virtiofs"
)

// A warm sandbox is started in two halves by two processes. The pool's
// keeper runs Prestart: every step of Start that does not depend on a
// pod, up to the agent's Health answer, in a pool directory and a cgroup
// of the pool's own. The shim that claims it runs Adopt: it takes the
// running processes over and does the pod's half (its cgroup, its
// oom_score_adj, CreateSandbox, SetupNetwork).

// PoolCgroupPath is the cgroup of pool VM vmid before a pod claims it:
// below cgroups.parent, under ".pool" (no sandbox id starts with a dot,
// so no sandbox cgroup can hold it).
func PoolCgroupPath(cfg *config.Config, vmid string) string {
	return path.Join(cfg.Cgroups.Parent, ".pool", vmid)
}

// lastPrestartStep is the last step of Start that Prestart runs.
const lastPrestartStep = "connect to agent"

// Prestart boots a VM for the warm pool in dir (statedir.NewPool): the
// steps of Start up to the agent's Health answer, with the sandbox
// cgroup at PoolCgroupPath and no network. Nothing of a pod is in it
// yet: its guest has mounted nothing and knows no sandbox id. An
// unclaimed VM is stopped with Stop; once claimed, its starter only
// ends its processes (EndProcesses) and the claimant does the rest.
//
// With pool.nics above 0 the VM boots with that many NICs on taps made
// in the network namespace at parkNS (the keeper's own, which nothing
// else uses), recorded in the directory for the claimant.
func Prestart(ctx context.Context, dir statedir.Dir, cfg *config.Config, parkNS string) (*Sandbox, error) {
	var steps []startStep
	for _, st := range startSteps() {
		if st.name == "attach network" {
			st = startStep{"park NICs", func(ctx context.Context, s *Sandbox, _ *startRun) (func(context.Context) error, error) {
				return s.parkNICs(ctx, parkNS)
			}}
		}
		steps = append(steps, st)
		if st.name == lastPrestartStep {
			break
		}
	}
	steps = append(steps, startStep{"warm up the guest", warmUpGuest})
	return start(ctx, dir, cfg, Options{CgroupsPath: PoolCgroupPath(cfg, dir.ID()), CRI: true}, steps)
}

// warmUpGuest has the agent start and remove a throwaway pod and run its
// network setup code (api WarmUp), so that the claimant's pod start runs
// code the guest ran already: under TCG, the first run of each path in a
// fresh VM is mostly QEMU translating it (a pod's first container start
// several times its second). It leaves nothing of a pod behind.
func warmUpGuest(ctx context.Context, s *Sandbox, _ *startRun) (func(context.Context) error, error) {
	wctx, cancel := context.WithTimeout(ctx, s.cfg.Timeouts.VMStart.Duration)
	defer cancel()
	if _, err := s.agent.WarmUp(wctx, &api.Empty{}); err != nil {
		return nil, fmt.Errorf("warm up the guest: %w\n%s", err, s.diagnostics())
	}
	return nil, nil
}

// parkNICs makes the VM's NICs in parkNS and records them.
func (s *Sandbox) parkNICs(ctx context.Context, parkNS string) (func(context.Context) error, error) {
	if s.cfg.Pool.NICs == 0 {
		return nil, nil
	}
	var owner uint32
	if s.vmmOpensEndpoints() {
		owner = s.uid()
	}
	e, err := network.Park(ctx, parkNS, s.cfg.Pool.NICs, owner)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(e.NICs)
	if err == nil {
		err = os.WriteFile(s.dir.File(statedir.ParkedNICsFile), b, 0o600)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("record parked NICs: %w", err), e.Detach(ctx))
	}
	s.net = e
	return e.Detach, nil
}

// attachParked moves the VM's parked NICs from the keeper's network
// namespace into the pod's and attaches them (network.AttachParked),
// recording the pod's namespace for Cleanup first.
func (s *Sandbox) attachParked(ctx context.Context, netnsPath string) error {
	b, err := os.ReadFile(s.dir.File(statedir.ParkedNICsFile))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("the warm VM has no NICs for network namespace %s", netnsPath)
	}
	if err != nil {
		return err
	}
	var parked []network.NIC
	if err := json.Unmarshal(b, &parked); err != nil {
		return fmt.Errorf("parked NICs record: %w", err)
	}
	if err := os.WriteFile(s.dir.File(statedir.NetNSFile), []byte(netnsPath+"\n"), 0o600); err != nil {
		return fmt.Errorf("record netns: %w", err)
	}
	parkNS, err := s.keeper.NetNS()
	if err != nil {
		return err
	}
	defer func() { _ = parkNS.Close() }()
	actx, cancel := context.WithTimeout(ctx, networkTimeout)
	defer cancel()
	e, err := network.AttachParked(actx, fmt.Sprintf("/proc/self/fd/%d", parkNS.Fd()), netnsPath, parked)
	if err != nil {
		return err
	}
	s.net = e
	return nil
}

// CloseAgent drops the starter's agent connection once the VM was
// handed to a claimant, which dials its own.
func (s *Sandbox) CloseAgent() error { return s.agent.Close() }

// EndProcesses stops the VM and virtiofsd and closes the console, and
// nothing else: it is what a pool keeper does when the claimant of its
// VM is gone (the claimant's cleanup removes the rest).
func (s *Sandbox) EndProcesses(ctx context.Context) error {
	var errs []error
	if err := s.vm.Stop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("stop VM: %w", err))
	}
	if err := s.fsd.Stop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("stop virtiofsd: %w", err))
	}
	if err := s.cons.Close(); err != nil {
		errs = append(errs, fmt.Errorf("console: %w", err))
	}
	if err := s.lease.Release(); err != nil {
		errs = append(errs, fmt.Errorf("jail uid: %w", err))
	}
	return errors.Join(errs...)
}

// Keeper is the pool process that started a claimed VM's processes and
// is their parent (they die with it). A claimed sandbox releases it
// last when it stops, after its own processes stopped.
type Keeper interface {
	// Pid is the keeper's host pid; it joins the sandbox cgroup.
	Pid() int
	// Alive fails once the keeper exited: a pid used before it said so
	// was surely the keeper's.
	Alive() error
	// NetNS opens the keeper's network namespace, where the VM's NICs
	// wait for a pod.
	NetNS() (*os.File, error)
	// Release lets the keeper end what is left and exit, and waits
	// for it.
	Release(ctx context.Context) error
}

// vmAdopter is a hypervisor driver that can take over a VM another
// process of the runtime started with the same configuration.
type vmAdopter interface {
	Adopt(ctx context.Context, cfg hypervisor.VMConfig) (hypervisor.VM, error)
}

// Adopt takes over the warm VM in dir, a pool directory claimed as the
// sandbox's (statedir Claimed), which keeper started with Prestart and
// cfg: the VM's processes and the keeper move from the pool's cgroup to
// the sandbox cgroup opts name and take the pod's oom_score_adj; the
// share, virtiofsd and the VM are adopted; the agent is dialled; then
// the sandbox and its network are set up as Start does. When a step
// fails, everything of the VM is stopped and removed (it never goes back
// to the pool), and the error names the step.
func Adopt(ctx context.Context, dir statedir.Dir, cfg *config.Config, opts Options, keeper Keeper) (*Sandbox, error) {
	return start(ctx, dir, cfg, opts, adoptSteps(keeper))
}

// adoptSteps are Adopt's steps, in order; the last ones are Start's.
func adoptSteps(keeper Keeper) []startStep {
	steps := []startStep{
		// Releasing the keeper ends every process it started: the
		// rollback of everything below, should theirs fail. The
		// directory goes after it (and with it the sandbox's link).
		{"take the keeper", func(_ context.Context, s *Sandbox, _ *startRun) (func(context.Context) error, error) {
			s.keeper = keeper
			return func(ctx context.Context) error {
				s.keeper = nil
				return errors.Join(keeper.Release(ctx), cleanupPoolCgroup(ctx, s.cfg, s.dir), statedir.Remove(ctx, s.dir))
			}, nil
		}},
		{"take the pool directory", func(_ context.Context, s *Sandbox, _ *startRun) (func(context.Context) error, error) {
			if !statedir.Exists(s.dir) {
				return nil, fmt.Errorf("pool directory %s is gone", s.dir.Path())
			}
			return nil, nil
		}},
		{"sandbox cgroup", func(ctx context.Context, s *Sandbox, r *startRun) (func(context.Context) error, error) {
			if err := s.takeCgroup(ctx, r.opts); err != nil {
				return nil, err
			}
			return func(ctx context.Context) error {
				// The keeper first: it ends the VM's processes and
				// gives the jail uid back; the cgroup's deletion would
				// kill it before it did.
				err := keeper.Release(ctx)
				if s.cg != nil {
					err = errors.Join(err, s.cg.Delete(ctx))
				}
				return err
			}, nil
		}},
		{"open the share", func(ctx context.Context, s *Sandbox, _ *startRun) (func(context.Context) error, error) {
			share, err := statedir.OpenShare(ctx, s.dir)
			if err != nil {
				return nil, err
			}
			s.share = share
			return func(context.Context) error { return share.Close() }, nil
		}},
		{"adopt virtiofsd", func(ctx context.Context, s *Sandbox, r *startRun) (func(context.Context) error, error) {
			fsd, err := virtiofs.Adopt(ctx, s.virtiofsConfig(r.opts.OOMScoreAdj))
			if err != nil {
				return nil, err
			}
			s.fsd = fsd
			s.share.SetServer(fsd)
			return fsd.Stop, nil
		}},
		{"hypervisor", func(ctx context.Context, s *Sandbox, r *startRun) (func(context.Context) error, error) {
			hv, vmm, _, err := newHypervisor(s.cfg)
			if err != nil {
				return nil, err
			}
			r.hv, s.vmm = hv, vmm
			return nil, nil
		}},
		{"adopt VM", func(ctx context.Context, s *Sandbox, r *startRun) (func(context.Context) error, error) {
			a, ok := r.hv.(vmAdopter)
			if !ok {
				return nil, fmt.Errorf("hypervisor %s cannot take over a running VM", s.vmm)
			}
			vm, err := a.Adopt(ctx, s.vmConfig(""))
			if err != nil {
				return nil, err
			}
			s.vm = vm
			return vm.Stop, nil
		}},
		// The pod's network: the parked NICs move into its namespace.
		{"attach network", func(ctx context.Context, s *Sandbox, r *startRun) (func(context.Context) error, error) {
			if r.opts.NetNSPath == "" {
				return nil, nil
			}
			if err := s.attachParked(ctx, r.opts.NetNSPath); err != nil {
				return nil, err
			}
			return s.net.Detach, nil
		}},
		{"oom_score_adj", func(_ context.Context, s *Sandbox, r *startRun) (func(context.Context) error, error) {
			return nil, s.setOOMScoreAdj(*oomOrZero(r.opts.OOMScoreAdj))
		}},
		{"connect to agent", func(ctx context.Context, s *Sandbox, _ *startRun) (func(context.Context) error, error) {
			agent, err := s.dialAgent(ctx)
			if err != nil {
				return nil, fmt.Errorf("%w\n%s", err, s.diagnostics())
			}
			s.agent = agent
			return func(context.Context) error { return s.agent.Close() }, nil
		}},
	}
	for _, st := range startSteps() {
		switch st.name {
		case "record the pod", "CreateSandbox", "SetupNetwork", "watch virtiofsd":
			steps = append(steps, st)
		}
	}
	return steps
}

// takeCgroup creates the sandbox cgroup, moves every process of the pool
// VM's cgroup (and the keeper) into it and removes the pool's. On
// failure it removes both, which ends the VM's processes.
func (s *Sandbox) takeCgroup(ctx context.Context, opts Options) (retErr error) {
	var pool *cgroup.Cgroup
	if p, err := statedir.CgroupPath(s.dir); err != nil {
		return err
	} else if p != "" {
		if pool, err = cgroup.Load(p); err != nil {
			return fmt.Errorf("pool cgroup %s: %w", p, err)
		}
	}
	defer func() {
		if retErr != nil && pool != nil {
			retErr = errors.Join(retErr, pool.Delete(ctx))
		}
	}()
	if err := s.createCgroup(ctx, opts); err != nil {
		return err
	}
	if s.cg == nil {
		return nil
	}
	defer func() {
		if retErr != nil {
			retErr = errors.Join(retErr, s.cg.Delete(ctx))
			s.cg = nil
		}
	}()
	if err := s.cg.Add(s.keeper.Pid()); err != nil {
		return err
	}
	if err := s.keeper.Alive(); err != nil {
		return err
	}
	if pool == nil {
		return nil
	}
	// A process of the VM starts no other, but threads come and go:
	// moving a pid moves its whole thread group, so one more read finds
	// the cgroup empty.
	for range 3 {
		pids, err := pool.Pids()
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			if err := pool.Delete(ctx); err != nil {
				return err
			}
			removeEmptyCgroup(path.Dir(pool.Path()))
			return nil
		}
		for _, pid := range pids {
			if err := s.cg.Add(pid); err != nil && !errors.Is(err, unix.ESRCH) {
				return err
			}
		}
	}
	return fmt.Errorf("pool cgroup %s: processes keep appearing", pool.Path())
}

// setOOMScoreAdj gives every process of the sandbox oom_score_adj adj
// (the pod's; a pool VM's processes started with 0).
func (s *Sandbox) setOOMScoreAdj(adj int) error {
	s.oomMu.Lock()
	defer s.oomMu.Unlock()
	s.oomAdj = adj
	return writeOOMScoreAdj(slices.Collect(maps.Values(s.Pids())), adj)
}

// removeEmptyCgroup removes the cgroup at p in every hierarchy where it
// is empty (rmdir refuses one that holds anything): the pool's parent
// cgroup once its last VM left.
func removeEmptyCgroup(p string) {
	cg, err := cgroup.Load(p)
	if err != nil {
		return
	}
	for _, dir := range cg.Dirs() {
		_ = unix.Rmdir(dir)
	}
}

// RemovePoolCgroup removes the pool's parent cgroup where it is empty.
func RemovePoolCgroup(cfg *config.Config) {
	if cfg.Cgroups.Enabled {
		removeEmptyCgroup(path.Dir(PoolCgroupPath(cfg, "x")))
	}
}

// cleanupPoolCgroup removes the pool cgroup of a pool VM's directory (a
// claim that failed, or a shim that died, before it was moved).
func cleanupPoolCgroup(ctx context.Context, cfg *config.Config, dir statedir.Dir) error {
	if !dir.Pool() || !cfg.Cgroups.Enabled {
		return nil
	}
	p := PoolCgroupPath(cfg, dir.PoolID())
	cg, err := cgroup.Load(p)
	if err == nil {
		err = cg.Delete(ctx)
	}
	if err != nil {
		return fmt.Errorf("remove pool cgroup %s: %w", p, err)
	}
	RemovePoolCgroup(cfg)
	return nil
}
