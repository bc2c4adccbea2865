package container

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/opencontainers/runc/libcontainer"
)

// Exit is how a process ended.
type Exit struct {
	// Status is the exit code, or 128+signal.
	Status uint32
	// At is when the process was reaped.
	At time.Time
	// OOMKilled reports that the OOM killer killed a process of the
	// container's cgroup (reported for the init process only).
	OOMKilled bool
}

// process is a container's init or exec process with its stdio.
type process struct {
	name string
	lp   *libcontainer.Process
	io   *stdio
	// proc is the started process; nil before start.
	proc running

	pid     int
	started chan struct{} // closed once running (never, if start failed)
	exited  chan struct{} // closed when reaped
	done    chan struct{} // closed when reaped and all output delivered
	exit    Exit
}

func newProcess(name string, lp *libcontainer.Process, io *stdio) *process {
	return &process{
		name:    name,
		lp:      lp,
		io:      io,
		started: make(chan struct{}),
		exited:  make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// start runs the process with run (its box's start or exec) and starts
// the stdio copies and the waiter. On failure the stdio is closed.
func (p *process) start(ctx context.Context, run func(*libcontainer.Process) (running, error)) error {
	if err := p.io.attach(p.lp); err != nil {
		p.io.abort()
		return err
	}
	proc, err := run(p.lp)
	if err != nil {
		p.io.abort()
		return err
	}
	pid, err := proc.Pid()
	if err != nil {
		p.io.abort()
		return fmt.Errorf("pid of %s: %w", p.name, err)
	}
	p.pid = pid
	p.proc = proc
	if err := p.io.started(); err != nil {
		_ = proc.Signal(os.Kill)
		_, _ = proc.Wait()
		p.io.abort()
		return err
	}
	close(p.started)
	p.io.run(p.exited)
	go p.wait(ctx)
	return nil
}

func (p *process) wait(ctx context.Context) {
	st, err := p.proc.Wait()
	p.exit = Exit{Status: stateExitStatus(st), At: time.Now()}
	if err != nil && st == nil {
		log.G(ctx).WithError(err).WithField("process", p.name).Warn("wait failed")
	}
	close(p.exited)
	p.io.finish()
	log.G(ctx).WithFields(log.Fields{"process": p.name, "pid": p.pid, "status": p.exit.Status}).Info("process exited")
	close(p.done)
}

func (p *process) isStarted() bool {
	select {
	case <-p.started:
		return true
	default:
		return false
	}
}

func (p *process) isExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// waitDone blocks until the process exited and its output was delivered.
func (p *process) waitDone(ctx context.Context) (Exit, error) {
	if !p.isStarted() {
		return Exit{}, fmt.Errorf("%s was not started: %w", p.name, errdefs.ErrFailedPrecondition)
	}
	select {
	case <-p.done:
		return p.exit, nil
	case <-ctx.Done():
		return Exit{}, fmt.Errorf("wait for %s: %w", p.name, ctx.Err())
	}
}

// signal delivers sig to the process.
func (p *process) signal(sig os.Signal) error {
	if !p.isStarted() {
		return fmt.Errorf("%s was not started: %w", p.name, errdefs.ErrFailedPrecondition)
	}
	if p.isExited() {
		return fmt.Errorf("%s already exited: %w", p.name, errdefs.ErrNotFound)
	}
	if err := p.proc.Signal(sig); err != nil {
		return fmt.Errorf("signal %s (pid %d) with %v: %w", p.name, p.pid, sig, err)
	}
	return nil
}

// discard releases the stdio of a process that will never start.
func (p *process) discard() {
	if !p.isStarted() {
		p.io.abort()
	}
}
