package proc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/log"

	"github.com/veil-runtime/veil/runtime/jail"
	"github.com/veil-runtime/veil/runtime/statedir"
	"golang.org/x/sys/unix"
)

// Spec describes a helper process.
type Spec struct {
	// Name names the log (<Dir>/<Name>.log) and pid (<Dir>/<Name>.pid) files.
	Name string
	// Dir is the sandbox directory that receives the log and pid files.
	Dir string
	// Path and Args are the program and its arguments (without argv[0]).
	Path string
	Args []string
	// NetNSPath, when set, runs the program inside that network namespace
	// (through nsenter, which execs the program: the pid stays the same).
	NetNSPath string
	// ExtraFiles are passed to the child as fds 3, 4, ...
	ExtraFiles []*os.File
	// Jail, when set, confines the helper (runtime/jail); the binary
	// must call reexec.Init first thing in main.
	Jail *jail.Spec
	// Cgroup, when set, receives the helper before it runs anything.
	Cgroup Placer
}

// LogPath is the file that receives the process's stdout and stderr.
func (s Spec) LogPath() string { return statedir.HelperLogFile(s.Dir, s.Name) }

// PidPath is the file that holds the process's pid.
func (s Spec) PidPath() string { return statedir.HelperPidFile(s.Dir, s.Name) }

// Placer puts a process into a cgroup (runtime/cgroup).
type Placer interface {
	Add(pid int) error
}

// Process is a running helper: a child started by Start, which a
// goroutine reaps, or a process adopted from the runtime that started it
// (Adopt), whose exit a goroutine learns from its pidfd. Done is closed
// once it exited.
type Process struct {
	spec Spec
	pid  int
	done chan struct{}
	err  error // valid after done; nil for an adopted process

	// pidfd is an adopted process's pidfd (nil for a child): its signals
	// go through it, to the process alone. It is closed once the exit was
	// seen (or on Release).
	pidfd *os.File

	// mu orders signals against the exit: while reaped is false a child's
	// leader is not reaped, so its pid (which is also the group id) cannot
	// have been reused and signalling the group is safe; an adopted
	// process's pidfd is open. For an adopted process reaped means its
	// exit was seen (or it was released).
	mu       sync.Mutex
	reaped   bool
	released bool

	stopOnce sync.Once
	stopErr  error
}

// Start launches the process described by s. The child gets its own
// process group and SIGKILL when the runtime dies.
//
// Pdeathsig fires when the *thread* that forked the child exits, not the
// process. The fork happens with the goroutine locked to its thread and the
// lock released afterwards, so the thread returns to the Go scheduler,
// which does not end threads that are not locked; a child could only be
// killed early if another goroutine later locked that thread and exited
// while locked, which this runtime does not do.
func Start(ctx context.Context, s Spec) (*Process, error) {
	logf, err := os.OpenFile(s.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("%s: open log: %w", s.Name, err)
	}
	defer func() { _ = logf.Close() }() // the child holds its own copy

	path, args := s.Path, s.Args
	if s.NetNSPath != "" {
		args = append([]string{"--net=" + s.NetNSPath, "--", path}, args...)
		path = "nsenter"
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.ExtraFiles = s.ExtraFiles
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var stage *jail.Stage
	if s.Jail != nil || s.Cgroup != nil {
		js := s.Jail
		if js == nil {
			js = &jail.Spec{}
		}
		if stage, err = jail.Prepare(cmd, js); err != nil {
			return nil, fmt.Errorf("%s: %w", s.Name, err)
		}
	}

	runtime.LockOSThread()
	err = cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		if stage != nil {
			stage.Abort()
		}
		return nil, fmt.Errorf("%s: start %s: %w", s.Name, path, err)
	}
	p := &Process{spec: s, pid: cmd.Process.Pid, done: make(chan struct{})}
	go p.reap(cmd)
	if stage != nil {
		err := s.placeAndRelease(p.pid, stage)
		if err != nil {
			p.kill()
			<-p.done
			return nil, fmt.Errorf("%s: %w", s.Name, err)
		}
	}
	if err := os.WriteFile(s.PidPath(), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o640); err != nil {
		p.kill()
		<-p.done
		return nil, fmt.Errorf("%s: write pid file: %w", s.Name, err)
	}
	log.G(ctx).WithField("pid", cmd.Process.Pid).Debugf("started %s: %s %v", s.Name, path, args)
	return p, nil
}

// placeAndRelease puts a started jail stage in its cgroup, then lets it
// run the helper.
func (s Spec) placeAndRelease(pid int, stage *jail.Stage) error {
	if s.Cgroup != nil {
		if err := s.Cgroup.Add(pid); err != nil {
			stage.Abort()
			return fmt.Errorf("place pid %d in the sandbox cgroup: %w", pid, err)
		}
	}
	return stage.Release()
}

// reap waits for the leader to exit, kills what is left of its process
// group while the leader is a zombie (its pid, the group id, still taken),
// then reaps it and closes done.
func (p *Process) reap(cmd *exec.Cmd) {
	var info unix.Siginfo
	for {
		// WNOWAIT leaves the zombie for cmd.Wait to collect.
		err := unix.Waitid(unix.P_PID, p.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			break // on any other error, cmd.Wait reports it
		}
	}
	p.mu.Lock()
	_ = syscall.Kill(-p.pid, syscall.SIGKILL) // stray children of the helper
	p.reaped = true
	p.mu.Unlock()
	p.err = cmd.Wait()
	close(p.done)
}

// Pid is the process id on the host.
func (p *Process) Pid() int { return p.pid }

// ErrExited reports that the process has exited (and was reaped).
var ErrExited = errors.New("process has exited")

// OpenNamespace opens the process's namespace of the given kind ("mnt",
// "net", ...). While a child is not reaped its pid cannot name another
// process, so the file is surely its namespace; an adopted process is
// checked through its pidfd to still hold its pid after the open. Once
// the process is known to have exited the call fails with ErrExited.
func (p *Process) OpenNamespace(kind string) (*os.File, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return nil, fmt.Errorf("%s (pid %d): %w", p.spec.Name, p.pid, ErrExited)
	}
	path := filepath.Join("/proc", strconv.Itoa(p.pid), "ns", kind)
	if p.pidfd != nil {
		return p.openAdoptedNamespace(kind, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s (pid %d): open %s namespace: %w", p.spec.Name, p.pid, kind, err)
	}
	return f, nil
}

// Done is closed when the process has exited and was reaped (an adopted
// process: once its pidfd reported the exit).
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the exit error; it is valid once Done is closed. It is nil for
// an adopted process: not being its parent, this process never learns
// its exit status.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// LogPath is where the process's output goes.
func (p *Process) LogPath() string { return p.spec.LogPath() }

// LogTail returns the last lines of the process's log, for error messages.
func (p *Process) LogTail() string { return Tail(p.spec.LogPath(), 20) }

// ExitError describes how the process ended, with its log tail; it is
// meant for a process that died when it should not have.
func (p *Process) ExitError() error {
	<-p.done
	state := "exited"
	switch {
	case p.pidfd != nil:
		state = "exited (not a child of this process; status unknown)"
	case p.err != nil:
		state = p.err.Error()
	}
	return fmt.Errorf("%s (pid %d) %s; log %s:\n%s", p.spec.Name, p.Pid(), state, p.spec.LogPath(), p.LogTail())
}

// Stop sends SIGTERM to the process group, waits up to grace (or ctx),
// then kills the group with SIGKILL and waits for the reap. It removes the
// pid file. It is idempotent. A process that already exited is not
// signalled: its group was killed when its exit was seen. An adopted
// process is signalled alone (see signal), and Stop waits for its exit.
func (p *Process) Stop(ctx context.Context, grace time.Duration) error {
	p.stopOnce.Do(func() { p.stopErr = p.stop(ctx, grace) })
	return p.stopErr
}

func (p *Process) stop(ctx context.Context, grace time.Duration) error {
	select {
	case <-p.done:
	default:
		p.signal(syscall.SIGTERM)
		t := time.NewTimer(grace)
		select {
		case <-p.done:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	p.kill() // also reaches children left in the group; no-op once reaped
	select {
	case <-p.done:
	case <-ctx.Done():
		return fmt.Errorf("%s (pid %d): wait after SIGKILL: %w", p.spec.Name, p.Pid(), ctx.Err())
	}
	if err := os.Remove(p.spec.PidPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s: %w", p.spec.Name, err)
	}
	return nil
}

// Kill sends SIGKILL to the process group (to an adopted process alone)
// and waits until it was reaped, resp. its exit seen (bounded by ctx); a
// process already reaped is not signalled. It keeps the pid file; Stop
// removes it.
func (p *Process) Kill(ctx context.Context) error {
	p.kill()
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s (pid %d): wait after SIGKILL: %w", p.spec.Name, p.Pid(), ctx.Err())
	}
}

func (p *Process) kill() { p.signal(syscall.SIGKILL) }

// signal signals the process group, whose id is the leader's pid
// (Setpgid). It does nothing once the leader's exit was seen: after the
// reap the group may be empty and its number reused as the pid and group
// id of an unrelated process (another sandbox's helper). Stray members
// were killed by reap before the leader was reaped.
//
// An adopted process is signalled through its pidfd, and alone: its
// parent may reap it at any time, unordered with this process, after
// which its group id could name an unrelated group. Its stray children
// are left to its parent's reap.
func (p *Process) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return
	}
	if p.pidfd != nil {
		_ = pidfdSignal(p.pidfd, sig)
		return
	}
	_ = syscall.Kill(-p.pid, sig)
}
