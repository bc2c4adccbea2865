package task

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containerd/fifo"
	"github.com/containerd/log"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/shim/telemetry"
)

const (
	// copyBufferSize is the buffer of each stdio copy.
	copyBufferSize = 128 << 10
	// stdinDrainTimeout bounds how long CloseIO lets the stdin copy drain
	// what is already in the FIFO before it cuts stdin off.
	stdinDrainTimeout = 2 * time.Second
)

// streamDialer opens one stdio stream connection to the guest.
type streamDialer interface {
	// DialStream connects to the guest's stream port and sends h; the
	// returned connection then carries only the stream's bytes.
	DialStream(ctx context.Context, h api.StreamHeader) (net.Conn, error)
}

// closeWriter is a connection whose write side can be shut down alone.
type closeWriter interface {
	CloseWrite() error
}

// wantStdio decides which streams a process gets from containerd's paths:
// a stream exists when its path is set, and a terminal has no stderr (the
// pty carries both outputs).
func wantStdio(p stdioPaths) *api.Stdio {
	return &api.Stdio{
		Stdin:    p.Stdin != "",
		Stdout:   p.Stdout != "",
		Stderr:   p.Stderr != "" && !p.Terminal,
		Terminal: p.Terminal,
	}
}

// streams is the host side of one process's stdio: the guest connections
// and the host FIFOs, and the goroutines copying between them.
type streams struct {
	name string

	stdin, stdout, stderr net.Conn
	stdinSrc              io.ReadCloser
	stdoutDst, stderrDst  io.WriteCloser

	outputs   sync.WaitGroup
	stdinDone chan struct{}
	closeOnce sync.Once

	// counts, when set, counts the bytes copied per stream.
	counts *telemetry.Recorder
}

// counter is counts' counter of stream, nil without counts.
func (st *streams) counter(stream string) *atomic.Uint64 {
	if st.counts == nil {
		return nil
	}
	return st.counts.Stdio(stream)
}

// countingReader adds what it reads to n (when not nil).
type countingReader struct {
	r io.Reader
	n *atomic.Uint64
}

func (c countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	if c.n != nil && k > 0 {
		c.n.Add(uint64(k))
	}
	return k, err
}

// openStreams dials a connection for every stream the process has and
// opens the host ends. ctx bounds the dials and the opening of output FIFOs
// (containerd's client holds their read ends already); life is the shim's
// own context, which the stdin FIFO stays tied to until its writer comes.
// On failure everything opened is closed.
func openStreams(ctx, life context.Context, d streamDialer, bound time.Duration, containerID, execID string, paths stdioPaths) (_ *streams, _ *api.Stdio, retErr error) {
	want := wantStdio(paths)
	st := &streams{name: containerID, stdinDone: make(chan struct{})}
	if execID != "" {
		st.name += "/" + execID
	}
	defer func() {
		if retErr != nil {
			st.abort()
		}
	}()
	dial := func(s api.Stream) (net.Conn, error) {
		// Only the dial is bounded (timeouts.agent_request, as every
		// agent request): the connection outlives ctx.
		dctx, cancel := context.WithTimeout(ctx, bound)
		defer cancel()
		c, err := d.DialStream(dctx, api.StreamHeader{ContainerID: containerID, ExecID: execID, Stream: s})
		if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("dial %s stream of %s: the agent did not answer within %s (timeouts.agent_request): the guest is frozen or overloaded: %w", s, st.name, bound, err)
		}
		if err != nil {
			return nil, fmt.Errorf("dial %s stream of %s: %w", s, st.name, err)
		}
		return c, nil
	}
	var err error
	if want.Stdin {
		if st.stdin, err = dial(api.StreamStdin); err != nil {
			return nil, nil, err
		}
		if st.stdinSrc, err = fifo.OpenFifo(life, paths.Stdin, syscall.O_RDONLY|syscall.O_NONBLOCK, 0); err != nil {
			return nil, nil, fmt.Errorf("open stdin fifo %s of %s: %w", paths.Stdin, st.name, err)
		}
	}
	if want.Stdout {
		if st.stdout, err = dial(api.StreamStdout); err != nil {
			return nil, nil, err
		}
		if st.stdoutDst, err = openOutput(ctx, paths.Stdout); err != nil {
			return nil, nil, fmt.Errorf("open stdout %s of %s: %w", paths.Stdout, st.name, err)
		}
	}
	if want.Stderr {
		if st.stderr, err = dial(api.StreamStderr); err != nil {
			return nil, nil, err
		}
		if st.stderrDst, err = openOutput(ctx, paths.Stderr); err != nil {
			return nil, nil, fmt.Errorf("open stderr %s of %s: %w", paths.Stderr, st.name, err)
		}
	}
	return st, want, nil
}

// openOutput opens a host output: a FIFO (waiting for its reader) or a
// regular file appended to.
func openOutput(ctx context.Context, path string) (io.WriteCloser, error) {
	isFifo, err := fifo.IsFifo(path)
	if err != nil {
		return nil, err
	}
	if isFifo {
		w, err := fifo.OpenFifo(ctx, path, syscall.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		// Hold a read end too, as containerd's runc shim does: when
		// containerd restarts, its reader goes away and comes back, and
		// the pipe must not break (EPIPE) in between. Nothing reads it:
		// while no reader is attached the output waits in the pipe.
		r, err := fifo.OpenFifo(ctx, path, syscall.O_RDONLY, 0)
		if err != nil {
			_ = w.Close()
			return nil, err
		}
		return heldFifo{WriteCloser: w, held: r}, nil
	}
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
}

// heldFifo is a FIFO's write end with a read end held open beside it.
type heldFifo struct {
	io.WriteCloser
	held io.Closer
}

func (h heldFifo) Close() error {
	return errors.Join(h.WriteCloser.Close(), h.held.Close())
}

// start begins copying: host stdin → guest (then half-close), guest
// stdout/stderr → host outputs.
func (st *streams) start(ctx context.Context) {
	if st.stdin != nil {
		go st.copyStdin(ctx)
	} else {
		close(st.stdinDone)
	}
	for _, o := range []struct {
		stream string
		src    net.Conn
		dst    io.WriteCloser
	}{{telemetry.Stdout, st.stdout, st.stdoutDst}, {telemetry.Stderr, st.stderr, st.stderrDst}} {
		if o.src == nil {
			continue
		}
		st.outputs.Add(1)
		go func() {
			defer st.outputs.Done()
			copyOutput(ctx, st.name, o.stream, o.dst, o.src, st.counter(o.stream))
		}()
	}
}

func (st *streams) copyStdin(ctx context.Context) {
	defer close(st.stdinDone)
	buf := make([]byte, copyBufferSize)
	_, err := io.CopyBuffer(writerOnly{st.stdin}, countingReader{readerOnly{st.stdinSrc}, st.counter(telemetry.Stdin)}, buf)
	if err != nil && !errors.Is(err, os.ErrClosed) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, fifo.ErrReadClosed) {
		log.G(ctx).WithError(err).WithField("process", st.name).Warn("copy stdin")
	}
	if cw, ok := st.stdin.(closeWriter); ok {
		if err := cw.CloseWrite(); err != nil && !errors.Is(err, net.ErrClosed) {
			log.G(ctx).WithError(err).WithField("process", st.name).Debug("half-close stdin stream")
		}
	} else {
		_ = st.stdin.Close()
	}
	_ = st.stdinSrc.Close()
}

// copyOutput copies one guest output to its host end. When the host end
// fails (a file that cannot be written), the rest is drained and dropped
// so the guest process never blocks on it. A FIFO does not fail when its
// reader leaves (see heldFifo): like runc's, the output then waits for
// the reader to come back.
func copyOutput(ctx context.Context, name, stream string, dst io.WriteCloser, src net.Conn, n *atomic.Uint64) {
	buf := make([]byte, copyBufferSize)
	_, err := io.CopyBuffer(writerOnly{dst}, countingReader{readerOnly{src}, n}, buf)
	if err != nil {
		var werr writeError
		if errors.As(err, &werr) {
			log.G(ctx).WithError(err).WithField("process", name).Warnf("host %s went away; dropping the rest", stream)
			_, err = io.CopyBuffer(io.Discard, readerOnly{src}, buf)
		}
		if err != nil && !errors.Is(err, net.ErrClosed) {
			log.G(ctx).WithError(err).WithField("process", name).Debugf("copy %s ended", stream)
		}
	}
	_ = dst.Close()
	_ = src.Close()
}

// waitOutput waits until all output was copied to the host, or until abort
// closes (the VM died); then it cuts every stream and waits for the copies
// to return.
func (st *streams) waitOutput(abort <-chan struct{}) {
	done := make(chan struct{})
	go func() {
		st.outputs.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-abort:
		st.abort()
		<-done
	}
}

// closeStdin ends the process's stdin: it lets the copy drain what the
// FIFO still holds for a bounded time, then cuts it.
func (st *streams) closeStdin() {
	if st.stdin == nil {
		return
	}
	t := time.NewTimer(stdinDrainTimeout)
	defer t.Stop()
	select {
	case <-st.stdinDone:
	case <-t.C:
		_ = st.stdinSrc.Close()
		<-st.stdinDone
	}
}

// abort closes every connection and host end; copies return promptly.
func (st *streams) abort() {
	st.closeOnce.Do(func() {
		for _, c := range []io.Closer{st.stdin, st.stdout, st.stderr} {
			if c != nil {
				_ = c.Close()
			}
		}
		for _, c := range []io.Closer{st.stdinSrc, st.stdoutDst, st.stderrDst} {
			if c != nil {
				_ = c.Close()
			}
		}
	})
}

// writeError marks errors from the destination of a copy.
type writeError struct{ err error }

func (e writeError) Error() string { return "write: " + e.err.Error() }
func (e writeError) Unwrap() error { return e.err }

// writerOnly hides ReadFrom so io.CopyBuffer uses our buffer and so write
// errors can be told apart from read errors.
type writerOnly struct{ w io.Writer }

func (w writerOnly) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil {
		return n, writeError{err}
	}
	return n, nil
}

// readerOnly hides WriteTo for the same reason.
type readerOnly struct{ r io.Reader }

func (r readerOnly) Read(p []byte) (int, error) { return r.r.Read(p) }
