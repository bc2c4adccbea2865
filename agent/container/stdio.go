package container

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containerd/log"
	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"
)

const (
	// copyBufferSize is the buffer of every stdio copy.
	copyBufferSize = 128 << 10
	// pipeSize is the kernel buffer asked for the process's stdio pipes.
	pipeSize = 1 << 20
	// drainIdle is how long output may stay silent after the process
	// exited before its stream is closed although some other process
	// (a background child) still holds the write end.
	drainIdle = 2 * time.Second
	// consoleTimeout bounds waiting for the pty master from runc init.
	consoleTimeout = 10 * time.Second
)

// streams are the connections of one process's stdio; nil when absent.
type streams struct {
	stdin, stdout, stderr net.Conn
}

func (s streams) closeAll() {
	for _, c := range []net.Conn{s.stdin, s.stdout, s.stderr} {
		if c != nil {
			_ = c.Close()
		}
	}
}

// stdio wires a process's standard streams to its connections, through
// pipes or a pty.
type stdio struct {
	name     string
	conns    streams
	terminal bool

	// Ends the process gets; closed here once it started.
	child []*os.File

	// Pipe mode: our ends.
	stdinW, stdoutR, stderrR *os.File

	// Terminal mode.
	sockParent *os.File
	console    *os.File

	stdinOnce  sync.Once
	outputs    sync.WaitGroup
	finishOnce sync.Once
}

func newStdio(name string, conns streams, terminal bool) *stdio {
	return &stdio{name: name, conns: conns, terminal: terminal}
}

// attach creates the pipes or the console socket and hands the process
// its ends. On error everything created is closed.
func (s *stdio) attach(lp *libcontainer.Process) (retErr error) {
	defer func() {
		if retErr != nil {
			s.closeLocal()
		}
	}()
	if s.terminal {
		parent, child, err := socketPair()
		if err != nil {
			return fmt.Errorf("console socket for %s: %w", s.name, err)
		}
		s.sockParent = parent
		s.child = append(s.child, child)
		lp.ConsoleSocket = child
		return nil
	}
	if s.conns.stdin != nil {
		r, w, err := newPipe()
		if err != nil {
			return fmt.Errorf("stdin pipe for %s: %w", s.name, err)
		}
		s.stdinW = w
		s.child = append(s.child, r)
		lp.Stdin = r
	}
	if s.conns.stdout != nil {
		r, w, err := newPipe()
		if err != nil {
			return fmt.Errorf("stdout pipe for %s: %w", s.name, err)
		}
		s.stdoutR = r
		s.child = append(s.child, w)
		lp.Stdout = w
	}
	if s.conns.stderr != nil {
		r, w, err := newPipe()
		if err != nil {
			return fmt.Errorf("stderr pipe for %s: %w", s.name, err)
		}
		s.stderrR = r
		s.child = append(s.child, w)
		lp.Stderr = w
	}
	return nil
}

// started closes the process's ends in this process and, with a terminal,
// receives the pty master from runc init.
func (s *stdio) started() error {
	for _, f := range s.child {
		_ = f.Close()
	}
	s.child = nil
	if !s.terminal {
		return nil
	}
	master, err := recvFile(s.sockParent, consoleTimeout)
	_ = s.sockParent.Close()
	s.sockParent = nil
	if err != nil {
		return fmt.Errorf("receive pty master of %s: %w", s.name, err)
	}
	s.console = master
	return nil
}

// run starts copying. exited is closed when the process exited; outputs
// then drain until EOF or until they stay silent for drainIdle.
func (s *stdio) run(exited <-chan struct{}) {
	if s.terminal {
		if s.conns.stdin != nil {
			go s.copyStdin(s.console, false)
		}
		s.outputs.Add(1)
		go func() {
			defer s.outputs.Done()
			s.copyOutput("terminal", s.conns.stdout, s.console, exited)
		}()
		return
	}
	if s.conns.stdin != nil {
		go s.copyStdin(s.stdinW, true)
	}
	for _, o := range []struct {
		what string
		dst  net.Conn
		src  *os.File
	}{{"stdout", s.conns.stdout, s.stdoutR}, {"stderr", s.conns.stderr, s.stderrR}} {
		if o.src == nil {
			continue
		}
		s.outputs.Add(1)
		go func() {
			defer s.outputs.Done()
			s.copyOutput(o.what, o.dst, o.src, exited)
		}()
	}
}

func (s *stdio) copyStdin(dst *os.File, closeAtEOF bool) {
	buf := make([]byte, copyBufferSize)
	_, err := io.CopyBuffer(dst, s.conns.stdin, buf)
	if err != nil && !errors.Is(err, os.ErrClosed) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, syscall.EPIPE) {
		log.L.WithError(err).WithField("process", s.name).Debug("stdin copy ended")
	}
	if closeAtEOF {
		s.closeStdin()
	}
}

// closeStdin closes the process's stdin (pipe mode) and the stdin stream.
func (s *stdio) closeStdin() {
	s.stdinOnce.Do(func() {
		if s.stdinW != nil {
			_ = s.stdinW.Close()
		}
		if s.conns.stdin != nil {
			_ = s.conns.stdin.Close()
		}
	})
}

// copyOutput copies src to dst until EOF (EIO for a pty whose other side
// is gone). After exited, a read that waits longer than drainIdle ends it.
// When dst fails, the rest of src is discarded so that the process never
// blocks on a full pipe.
func (s *stdio) copyOutput(what string, dst net.Conn, src *os.File, exited <-chan struct{}) {
	var afterExit atomic.Bool
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-exited:
			afterExit.Store(true)
			_ = src.SetReadDeadline(time.Now().Add(drainIdle))
		case <-stop:
		}
	}()
	buf := make([]byte, copyBufferSize)
	w := io.Discard
	if dst != nil {
		w = dst
	}
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				log.L.WithError(werr).WithField("process", s.name).Warnf("%s stream failed; discarding the rest", what)
				w = io.Discard
			}
			if afterExit.Load() {
				_ = src.SetReadDeadline(time.Now().Add(drainIdle))
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF), errors.Is(err, syscall.EIO):
			return
		case errors.Is(err, os.ErrDeadlineExceeded):
			log.L.WithField("process", s.name).Warnf("%s still open %s after the process exited (a child holds it); closing the stream", what, drainIdle)
			return
		default:
			log.L.WithError(err).WithField("process", s.name).Warnf("read %s", what)
			return
		}
	}
}

// finish waits for the outputs to drain, then closes every stream (output
// connections write side first, so the host sees a clean EOF) and every
// local end.
func (s *stdio) finish() {
	s.outputs.Wait()
	s.finishOnce.Do(func() {
		for _, c := range []net.Conn{s.conns.stdout, s.conns.stderr} {
			if c == nil {
				continue
			}
			if cw, ok := c.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
			}
			_ = c.Close()
		}
		s.closeStdin()
		s.closeLocal()
	})
}

// abort closes everything without copying (the process never started).
func (s *stdio) abort() {
	s.finishOnce.Do(func() {
		s.conns.closeAll()
		s.closeLocal()
	})
}

func (s *stdio) closeLocal() {
	for _, f := range append(s.child, s.stdinW, s.stdoutR, s.stderrR, s.sockParent, s.console) {
		if f != nil {
			_ = f.Close()
		}
	}
	s.child = nil
}

// resize sets the terminal's window size.
func (s *stdio) resize(width, height uint32) error {
	if s.console == nil {
		return errors.New("no terminal")
	}
	rc, err := s.console.SyscallConn()
	if err != nil {
		return err
	}
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		ierr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: uint16(height), Col: uint16(width)})
	}); err != nil {
		return err
	}
	return ierr
}

// newPipe returns a pipe whose ends are pollable (deadlines work) and
// whose kernel buffer is enlarged when the system allows it.
func newPipe() (r, w *os.File, err error) {
	r, w, err = os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	if rc, err := r.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize)
		})
	}
	return r, w, nil
}

// socketPair returns a connected AF_UNIX pair; the parent end is
// non-blocking so reads on it honour deadlines.
func socketPair() (parent, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		_ = unix.Close(fds[0])
		_ = unix.Close(fds[1])
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "console-socket-parent"), os.NewFile(uintptr(fds[1]), "console-socket-child"), nil
}

// recvFile receives one file descriptor sent with SCM_RIGHTS (the message
// body is the file's name) and returns it as a pollable file.
func recvFile(sock *os.File, timeout time.Duration) (*os.File, error) {
	if err := sock.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	rc, err := sock.SyscallConn()
	if err != nil {
		return nil, err
	}
	name := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	var n, oobn int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), name, oob, unix.MSG_CMSG_CLOEXEC)
		return rerr != unix.EAGAIN
	})
	if err != nil {
		return nil, err
	}
	if rerr != nil {
		return nil, fmt.Errorf("recvmsg: %w", rerr)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("parse control message: %w", err)
	}
	var fds []int
	for _, m := range msgs {
		f, err := unix.ParseUnixRights(&m)
		if err == nil {
			fds = append(fds, f...)
		}
	}
	if len(fds) != 1 {
		for _, fd := range fds {
			_ = unix.Close(fd)
		}
		return nil, fmt.Errorf("expected 1 file descriptor, got %d", len(fds))
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		_ = unix.Close(fds[0])
		return nil, err
	}
	return os.NewFile(uintptr(fds[0]), string(name[:n])), nil
}
