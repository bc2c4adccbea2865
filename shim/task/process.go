package task

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
)

// vmDeathExitStatus is the exit status every process gets when its VM dies
// under it (as Kata reports it).
const vmDeathExitStatus = 255

// procState is where a process is in its life.
type procState int

const (
	stateCreated procState = iota
	// stateStarting: a Start owns the process and is asking the agent to
	// run it.
	stateStarting
	stateRunning
	stateStopped
)

func (s procState) String() string {
	switch s {
	case stateCreated:
		return "created"
	case stateStarting:
		return "starting"
	case stateRunning:
		return "running"
	case stateStopped:
		return "stopped"
	default:
		return fmt.Sprintf("state(%d)", int(s))
	}
}

// taskStatus maps a state to containerd's task status.
func (s procState) taskStatus() task.Status {
	switch s {
	case stateCreated, stateStarting:
		return task.Status_CREATED
	case stateRunning:
		return task.Status_RUNNING
	case stateStopped:
		return task.Status_STOPPED
	default:
		return task.Status_UNKNOWN
	}
}

// stdioPaths are the host ends of a process's stdio as containerd gave
// them: FIFO paths, empty for a stream the process does not have.
type stdioPaths struct {
	Stdin, Stdout, Stderr string
	Terminal              bool
}

// process is the shim's record of one container init or exec process. Its
// state only moves forward: created → starting → running → stopped, or
// to stopped from created or starting when it never ran.
//
// An exit becomes visible (state stopped, exited closed) only after its
// TaskExit event was queued, so that nothing a client does on seeing the
// exit (Wait returning, Delete) can publish an event ahead of TaskExit.
type process struct {
	containerID string
	execID      string // empty for the init process
	stdio       stdioPaths
	// spec is the OCI Process (JSON) of an exec; nil for init.
	spec []byte

	mu         sync.Mutex
	state      procState
	pid        uint32
	exitStatus uint32
	exitedAt   time.Time
	streams    *streams
	// exiting is set once an exit was recorded and is being announced;
	// exited is closed once it was announced and the state is stopped.
	exiting bool
	exited  chan struct{}
}

func newProcess(containerID, execID string, stdio stdioPaths, spec []byte) *process {
	return &process{
		containerID: containerID,
		execID:      execID,
		stdio:       stdio,
		spec:        spec,
		exited:      make(chan struct{}),
	}
}

// processStatus is a consistent snapshot of a process.
type processStatus struct {
	State      procState
	Pid        uint32
	ExitStatus uint32
	ExitedAt   time.Time
}

func (p *process) status() processStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	return processStatus{State: p.state, Pid: p.pid, ExitStatus: p.exitStatus, ExitedAt: p.exitedAt}
}

// setPid records the host-visible pid reported for the process.
func (p *process) setPid(pid uint32) {
	p.mu.Lock()
	p.pid = pid
	p.mu.Unlock()
}

// setStreams attaches the process's stdio connections.
func (p *process) setStreams(st *streams) {
	p.mu.Lock()
	p.streams = st
	p.mu.Unlock()
}

func (p *process) getStreams() *streams {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.streams
}

// markStarting claims a created process for one Start: of concurrent
// Starts only one gets past it.
func (p *process) markStarting() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.state == stateCreated && !p.exiting:
		p.state = stateStarting
		return nil
	case p.state == stateStopped || p.exiting:
		return errProcessFinished
	default:
		return fmt.Errorf("process %s is %s: %w", p.name(), p.state, errdefs.ErrFailedPrecondition)
	}
}

// markRunning moves a starting process to running.
func (p *process) markRunning() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.state == stateStarting && !p.exiting:
		p.state = stateRunning
		return nil
	case p.state == stateStopped || p.exiting:
		return errProcessFinished
	default:
		return fmt.Errorf("process %s is %s, not starting: %w", p.name(), p.state, errdefs.ErrFailedPrecondition)
	}
}

// markExited records the exit; only the first call counts. It reports
// whether this call recorded it and whether the process had been running.
// For a process that was running, announce (when not nil) runs with the
// final status before the exit becomes visible: it queues TaskExit.
func (p *process) markExited(status uint32, at time.Time, announce func(processStatus)) (recorded, wasRunning bool) {
	p.mu.Lock()
	if p.state == stateStopped || p.exiting {
		p.mu.Unlock()
		return false, false
	}
	wasRunning = p.state == stateRunning
	p.exiting = true
	p.exitStatus = status
	p.exitedAt = at
	final := processStatus{State: stateStopped, Pid: p.pid, ExitStatus: status, ExitedAt: at}
	p.mu.Unlock()

	if wasRunning && announce != nil {
		announce(final)
	}

	p.mu.Lock()
	p.state = stateStopped
	close(p.exited)
	p.mu.Unlock()
	return true, wasRunning
}

// settle waits until an exit being announced became visible; it returns
// at once when no exit is pending.
func (p *process) settle(ctx context.Context) error {
	p.mu.Lock()
	pending := p.exiting && p.state != stateStopped
	p.mu.Unlock()
	if !pending {
		return nil
	}
	select {
	case <-p.exited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for the exit of %s to be published: %w", p.name(), ctx.Err())
	}
}

// name is the process's id for messages: "ctr" or "ctr/exec".
func (p *process) name() string {
	if p.execID == "" {
		return p.containerID
	}
	return p.containerID + "/" + p.execID
}

// container is one container of the sandbox: its init process, its execs
// and where its root filesystem is mounted on the host.
type container struct {
	id     string
	bundle string
	// share is the sandbox share that shows the container's filesystems
	// to the guest.
	share ContainerShare
	init  *process

	mu    sync.Mutex
	execs map[string]*process
}

func newContainer(id, bundle string, share ContainerShare, init *process) *container {
	return &container{id: id, bundle: bundle, share: share, init: init, execs: map[string]*process{}}
}

// process finds the init process (empty execID) or an exec.
func (c *container) process(execID string) (*process, error) {
	if execID == "" {
		return c.init, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.execs[execID]
	if !ok {
		return nil, fmt.Errorf("exec %q of container %q: %w", execID, c.id, errdefs.ErrNotFound)
	}
	return p, nil
}

// addExec registers a new exec; its id must be unused.
func (c *container) addExec(p *process) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.execs[p.execID]; ok {
		return fmt.Errorf("exec %q of container %q: %w", p.execID, c.id, errdefs.ErrAlreadyExists)
	}
	c.execs[p.execID] = p
	return nil
}

// removeExec forgets an exec that is not running.
func (c *container) removeExec(execID string) (*process, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.execs[execID]
	if !ok {
		return nil, fmt.Errorf("exec %q of container %q: %w", execID, c.id, errdefs.ErrNotFound)
	}
	if st := p.status().State; st != stateCreated && st != stateStopped {
		return nil, fmt.Errorf("exec %q of container %q is %s: %w", execID, c.id, st, errdefs.ErrFailedPrecondition)
	}
	delete(c.execs, execID)
	return p, nil
}

// all lists init and execs.
func (c *container) all() []*process {
	c.mu.Lock()
	defer c.mu.Unlock()
	ps := []*process{c.init}
	for _, p := range c.execs {
		ps = append(ps, p)
	}
	return ps
}
