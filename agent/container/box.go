package container

import (
	"errors"
	"fmt"
	"os"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/runc/libcontainer"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// box is what a container's processes live in: libcontainer's container
// (lcBox) for every container but a pod's sandbox container, which is a
// pod holder (holder.go), a process of the agent's own that only keeps
// the pod's namespaces. Errors are errdefs-classified: a process or
// container that is not running is NotFound or FailedPrecondition.
type box interface {
	// start runs the init process lp describes (its stdio attached).
	start(lp *libcontainer.Process) (running, error)
	// signal delivers sig to the init process.
	signal(sig os.Signal) error
	// processes lists the guest pids in the container's cgroup.
	processes() ([]int, error)
	// pause and resume freeze and thaw the container's cgroup.
	pause() error
	resume() error
	// paused reports whether the cgroup is frozen.
	paused() bool
	// cgroupPath is the unified (cgroup v2) directory, or "".
	cgroupPath() string
	// update applies what r sets to the container's cgroup.
	update(r *specs.LinuxResources) error
	// destroy removes the container's cgroup and state; its processes
	// are dead.
	destroy() error
}

// execer is a box that runs extra processes (exec) beside its init.
type execer interface {
	exec(lp *libcontainer.Process) (running, error)
}

// running is a started process.
type running interface {
	Pid() (int, error)
	Signal(os.Signal) error
	Wait() (*os.ProcessState, error)
}

// lcBox is a libcontainer container.
type lcBox struct{ lc *libcontainer.Container }

func (b lcBox) start(lp *libcontainer.Process) (running, error) { return lp, b.lc.Run(lp) }
func (b lcBox) exec(lp *libcontainer.Process) (running, error)  { return lp, b.lc.Run(lp) }

func (b lcBox) signal(sig os.Signal) error {
	if err := b.lc.Signal(sig); err != nil {
		if errors.Is(err, libcontainer.ErrNotRunning) {
			return fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
		}
		return err
	}
	return nil
}

func (b lcBox) processes() ([]int, error) { return b.lc.Processes() }
func (b lcBox) pause() error              { return asPrecondition(b.lc.Pause()) }
func (b lcBox) resume() error             { return asPrecondition(b.lc.Resume()) }
func (b lcBox) destroy() error            { return b.lc.Destroy() }

func (b lcBox) paused() bool {
	st, err := b.lc.Status()
	return err == nil && st == libcontainer.Paused
}

func (b lcBox) cgroupPath() string {
	st, err := b.lc.State()
	if err != nil {
		return ""
	}
	// On cgroup v2 the manager reports the single unified path under "".
	return st.CgroupPaths[""]
}

func (b lcBox) update(r *specs.LinuxResources) error {
	cfg := b.lc.Config()
	if cfg.Cgroups == nil || cfg.Cgroups.Resources == nil {
		return fmt.Errorf("it has no cgroup: %w", errdefs.ErrFailedPrecondition)
	}
	applyResources(cfg.Cgroups.Resources, r)
	return b.lc.Set(cfg)
}

// asPrecondition marks libcontainer's state refusals (an init that exited
// but is not reaped yet, a container no longer paused) FailedPrecondition.
func asPrecondition(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, libcontainer.ErrNotRunning) || errors.Is(err, libcontainer.ErrNotPaused) {
		return fmt.Errorf("%w: %w", err, errdefs.ErrFailedPrecondition)
	}
	return err
}
