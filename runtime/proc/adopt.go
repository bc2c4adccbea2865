package proc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

// Adopt takes over the helper that Start ran for s in another process
// (the warm pool's keeper), so that this process can drive it as if it
// had started it: Done, Stop, Kill, OpenNamespace and the log tail work
// as for a child. Only s.Name and s.Dir are used.
//
// The pid comes from s.PidPath(); the process holding it must be one of
// the helpers of s.Dir (OwnerOf). Not being its parent, this process
// cannot wait(2) for it: it holds a pidfd instead, which names the
// process itself (never a later holder of its pid), learns its exit from
// the pidfd turning readable and signals it through the pidfd. Its exit
// status stays unknown (Err is nil). A missing pid file fails with an
// error wrapping os.ErrNotExist.
func Adopt(ctx context.Context, s Spec) (*Process, error) {
	pidPath := s.PidPath()
	b, err := os.ReadFile(pidPath)
	if err != nil {
		return nil, fmt.Errorf("%s: adopt: read pid file: %w", s.Name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return nil, fmt.Errorf("%s: adopt: pid file %s holds no pid: %q", s.Name, pidPath, b)
	}
	o := OwnerOf(s.Dir, "")
	notOwned := func() error {
		return fmt.Errorf("%s: adopt: pid %d (from %s) is not a running helper of %s", s.Name, pid, pidPath, s.Dir)
	}
	if !o.Owns(pid) {
		return nil, notOwned()
	}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if errors.Is(err, unix.ESRCH) {
		return nil, notOwned()
	}
	if err != nil {
		return nil, fmt.Errorf("%s: adopt pid %d: pidfd_open: %w", s.Name, pid, err)
	}
	pidfd := os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid))
	// The pidfd names whichever process held pid when it was opened. If
	// that process still holds pid after /proc was read again, it held it
	// throughout (a pid, once released, is never its holder's again), so
	// what /proc showed was that process: the helper, not a recycled pid.
	if !o.Owns(pid) || pidfdSignal(pidfd, 0) != nil {
		_ = pidfd.Close()
		return nil, notOwned()
	}
	p := &Process{spec: s, pid: pid, done: make(chan struct{}), pidfd: pidfd}
	go p.watchExit()
	log.G(ctx).WithField("pid", pid).Debugf("adopted %s", s.Name)
	return p, nil
}

// Release stops watching an adopted process and closes its pidfd,
// leaving the process running: for a caller that adopted it and then
// gave up the takeover. Done never closes afterwards, and p must not be
// used again. On a child started by Start it does nothing.
func (p *Process) Release() {
	if p.pidfd == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return
	}
	p.reaped, p.released = true, true
	_ = p.pidfd.Close() // ends watchExit's wait
}

// watchExit waits until the adopted process exited, then closes its
// pidfd and done; it ends without closing done when p was released.
func (p *Process) watchExit() {
	waitPidfd(p.pidfd)
	p.mu.Lock()
	if p.released {
		p.mu.Unlock()
		return
	}
	p.reaped = true
	_ = p.pidfd.Close()
	p.mu.Unlock()
	close(p.done)
}

// openAdoptedNamespace opens path, the adopted process's namespace of the
// given kind under /proc/<pid>. The file was the process's if the process
// still holds its pid after the open; else (or when the open failed
// because it exited) the call fails with ErrExited. p.mu is held.
func (p *Process) openAdoptedNamespace(kind, path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		if pidfdExited(p.pidfd) {
			return nil, fmt.Errorf("%s (pid %d): %w", p.spec.Name, p.pid, ErrExited)
		}
		return nil, fmt.Errorf("%s (pid %d): open %s namespace: %w", p.spec.Name, p.pid, kind, err)
	}
	if err := pidfdSignal(p.pidfd, 0); err != nil {
		_ = f.Close()
		if errors.Is(err, unix.ESRCH) {
			return nil, fmt.Errorf("%s (pid %d): %w", p.spec.Name, p.pid, ErrExited)
		}
		return nil, fmt.Errorf("%s (pid %d): check that it still runs: %w", p.spec.Name, p.pid, err)
	}
	return f, nil
}

// pidfdSignal sends sig (0: only check that the process still holds its
// pid) to the process of pidfd.
func pidfdSignal(pidfd *os.File, sig syscall.Signal) error {
	rc, err := pidfd.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.PidfdSendSignal(int(fd), sig, nil, 0) }); err != nil {
		return err
	}
	return serr
}

// waitPidfd blocks until pidfd is readable: its process has exited (the
// whole thread group; a zombie counts) or pidfd was closed. The goroutine
// waits in the runtime's poller, holding no thread; should the poller
// refuse the descriptor, it blocks in poll(2) instead.
func waitPidfd(pidfd *os.File) {
	rc, err := pidfd.SyscallConn()
	if err != nil {
		return // closed
	}
	err = rc.Read(func(fd uintptr) bool { return pollIn(int(fd), 0) })
	if err == nil || errors.Is(err, os.ErrClosed) {
		return
	}
	_ = rc.Control(func(fd uintptr) { pollIn(int(fd), -1) })
}

// pidfdExited reports whether the process of pidfd has exited, without
// waiting. pidfd must be open.
func pidfdExited(pidfd *os.File) bool {
	rc, err := pidfd.SyscallConn()
	if err != nil {
		return true
	}
	exited := false
	if err := rc.Control(func(fd uintptr) { exited = pollIn(int(fd), 0) }); err != nil {
		return true
	}
	return exited
}

// pollIn polls fd for readability for up to timeout milliseconds (-1:
// no bound) and reports whether it is readable. A failing poll (which a
// valid descriptor does not cause) counts as readable rather than block
// a waiter for ever.
func pollIn(fd, timeout int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, timeout)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err != nil || n > 0
	}
}
