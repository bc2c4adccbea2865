package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/agent/container"
)

const (
	// DebugExecDefaultTimeout bounds a DebugExec that names no timeout.
	DebugExecDefaultTimeout = 30 * time.Second
	// DebugExecMaxTimeout is the longest timeout DebugExec accepts.
	DebugExecMaxTimeout = 10 * time.Minute
	// DebugExecOutputLimit bounds the stdout and the stderr DebugExec
	// returns; the rest is dropped (and reported as truncated).
	DebugExecOutputLimit = 1 << 20
	// debugExecWaitDelay bounds the wait for output pipes after the
	// process exited (a background child may hold them open).
	debugExecWaitDelay = 2 * time.Second
	// DebugExecPath is the PATH a DebugExec gets unless its env sets one
	// (the guest's PID 1 starts without PATH).
	DebugExecPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// DebugExec runs argv in the guest, outside any container, and returns its
// exit status and bounded output once it exited or was killed at the
// timeout.
func (s *Service) DebugExec(ctx context.Context, r *api.DebugExecRequest) (*api.DebugExecResponse, error) {
	resp, err := runDebug(ctx, r)
	return resp, toStatus(err)
}

func runDebug(ctx context.Context, r *api.DebugExecRequest) (*api.DebugExecResponse, error) {
	if len(r.Argv) == 0 || r.Argv[0] == "" {
		return nil, fmt.Errorf("debug exec: empty argv: %w", errdefs.ErrInvalidArgument)
	}
	timeout := DebugExecDefaultTimeout
	if r.TimeoutMs > 0 {
		timeout = time.Duration(r.TimeoutMs) * time.Millisecond
	}
	if timeout > DebugExecMaxTimeout {
		return nil, fmt.Errorf("debug exec: timeout %s above the %s maximum: %w", timeout, DebugExecMaxTimeout, errdefs.ErrInvalidArgument)
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	env := append(append(os.Environ(), "PATH="+DebugExecPath), r.Env...)
	prog, err := lookPath(r.Argv[0], env)
	if err != nil {
		return nil, fmt.Errorf("debug exec %q: %w: %w", r.Argv, err, errdefs.ErrNotFound)
	}
	cmd := exec.CommandContext(rctx, prog, r.Argv[1:]...)
	cmd.Args[0] = r.Argv[0]
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(r.Stdin)
	stdout := &limitedBuffer{limit: DebugExecOutputLimit}
	stderr := &limitedBuffer{limit: DebugExecOutputLimit}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Its own process group, so the kill at the timeout takes its children.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = debugExecWaitDelay

	start := time.Now()
	err = cmd.Run()
	resp := &api.DebugExecResponse{
		Stdout:          stdout.buf.Bytes(),
		Stderr:          stderr.buf.Bytes(),
		StdoutTruncated: stdout.truncated,
		StderrTruncated: stderr.truncated,
		TimedOut:        errors.Is(rctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil,
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		resp.ExitStatus = container.ExitStatus(exitErr.Sys().(syscall.WaitStatus))
	case errors.Is(err, exec.ErrWaitDelay):
		// Exited, but a child kept the output open; what was read is kept.
		resp.ExitStatus = container.ExitStatus(cmd.ProcessState.Sys().(syscall.WaitStatus))
	case errors.Is(err, exec.ErrNotFound) || errors.Is(err, syscall.ENOENT):
		return nil, fmt.Errorf("debug exec %q: %w: %w", r.Argv, err, errdefs.ErrNotFound)
	default:
		return nil, fmt.Errorf("debug exec %q: %w", r.Argv, err)
	}
	log.G(ctx).WithFields(log.Fields{"argv": r.Argv, "status": resp.ExitStatus, "timed_out": resp.TimedOut, "took": time.Since(start)}).Info("debug exec")
	return resp, nil
}

// lookPath finds name on the last PATH of env (exec.LookPath would use the
// agent's own PATH). A name with a slash is used as it is.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found on PATH %s", name, path)
}

// limitedBuffer keeps the first limit bytes written to it and drops the
// rest, noting that it did; writes never fail, so the process never sees
// a broken pipe.
type limitedBuffer struct {
	buf       bytes.Buffer
	limit     int
	truncated bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	room := b.limit - b.buf.Len()
	if room < len(p) {
		b.truncated = true
		if room > 0 {
			b.buf.Write(p[:room])
		}
		return len(p), nil
	}
	return b.buf.Write(p)
}
