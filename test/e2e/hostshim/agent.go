package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/veil-runtime/veil/agent/api"
)

// streamTable pairs stream connections with processes, like the agent.
type streamTable struct {
	mu    sync.Mutex
	conns map[api.StreamHeader]net.Conn
}

func newStreamTable() *streamTable { return &streamTable{conns: map[api.StreamHeader]net.Conn{}} }

func (s *sandbox) DialStream(ctx context.Context, h api.StreamHeader) (net.Conn, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	host, err := fileConn(fds[0])
	if err != nil {
		return nil, err
	}
	guest, err := fileConn(fds[1])
	if err != nil {
		return nil, err
	}
	s.streams.mu.Lock()
	s.streams.conns[h] = guest
	s.streams.mu.Unlock()
	return host, nil
}

func fileConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "stream")
	defer f.Close()
	return net.FileConn(f)
}

func (t *streamTable) take(cid, eid string, s api.Stream) net.Conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := api.StreamHeader{ContainerID: cid, ExecID: eid, Stream: s}
	c := t.conns[h]
	delete(t.conns, h)
	return c
}

type containerSpec struct {
	spec  specs.Spec
	stdio *api.Stdio
}

type proc struct {
	cmd    *exec.Cmd
	pty    *os.File
	copies sync.WaitGroup
	done   chan struct{}
	status uint32
	at     time.Time
}

type agent struct {
	api.AgentService
	sb *sandbox

	mu    sync.Mutex
	procs map[string]*proc
	specs map[string]*containerSpec
}

func key(cid, eid string) string { return cid + "/" + eid }

func (a *agent) Health(context.Context, *api.HealthRequest) (*api.HealthResponse, error) {
	return &api.HealthResponse{AgentVersion: "hostshim", ApiVersion: api.APIVersion}, nil
}

func (a *agent) DestroySandbox(context.Context, *api.DestroySandboxRequest) (*api.Empty, error) {
	return &api.Empty{}, nil
}

func (a *agent) CreateContainer(_ context.Context, r *api.CreateContainerRequest) (*api.Empty, error) {
	var s specs.Spec
	if err := json.Unmarshal(r.Spec, &s); err != nil {
		return nil, err
	}
	if s.Process == nil || len(s.Process.Args) == 0 {
		return nil, errors.New("no process")
	}
	a.mu.Lock()
	a.specs[r.ContainerId] = &containerSpec{spec: s, stdio: r.Stdio}
	a.mu.Unlock()
	return &api.Empty{}, nil
}

func (a *agent) StartContainer(_ context.Context, r *api.ContainerRequest) (*api.StartResponse, error) {
	a.mu.Lock()
	cs := a.specs[r.ContainerId]
	a.mu.Unlock()
	if cs == nil {
		return nil, fmt.Errorf("container %s not found", r.ContainerId)
	}
	return a.run(r.ContainerId, "", cs.spec.Process, cs.stdio)
}

func (a *agent) ExecProcess(_ context.Context, r *api.ExecProcessRequest) (*api.StartResponse, error) {
	var p specs.Process
	if err := json.Unmarshal(r.Process, &p); err != nil {
		return nil, err
	}
	return a.run(r.ContainerId, r.ExecId, &p, r.Stdio)
}

func (a *agent) run(cid, eid string, p *specs.Process, stdio *api.Stdio) (*api.StartResponse, error) {
	in := a.sb.streams.take(cid, eid, api.StreamStdin)
	out := a.sb.streams.take(cid, eid, api.StreamStdout)
	errc := a.sb.streams.take(cid, eid, api.StreamStderr)
	cmd := exec.Command(p.Args[0], p.Args[1:]...)
	cmd.Env = p.Env
	// A real container's processes die with its init (PID namespace); on
	// the host, stop waiting for leftover children holding the output.
	cmd.WaitDelay = 200 * time.Millisecond
	pr := &proc{cmd: cmd, done: make(chan struct{})}
	var err error
	if p.Terminal {
		pr.pty, err = pty.Start(cmd)
		if err == nil {
			if in != nil {
				go func() { _, _ = io.Copy(pr.pty, in) }()
			}
			if out != nil {
				pr.copies.Add(1)
				go func() { defer pr.copies.Done(); _, _ = io.Copy(out, pr.pty) }()
			}
		}
	} else {
		if in != nil {
			// Like a real agent, do not make the exit wait for stdin.
			r, w, perr := os.Pipe()
			if perr != nil {
				return nil, perr
			}
			cmd.Stdin = r
			defer r.Close()
			go func() {
				_, _ = io.Copy(w, in)
				w.Close()
			}()
		}
		if out != nil {
			cmd.Stdout = out
		}
		if errc != nil {
			cmd.Stderr = errc
		}
		err = cmd.Start()
	}
	if err != nil {
		for _, c := range []net.Conn{in, out, errc} {
			if c != nil {
				c.Close()
			}
		}
		return nil, err
	}
	a.mu.Lock()
	a.procs[key(cid, eid)] = pr
	a.mu.Unlock()
	go func() {
		err := cmd.Wait()
		if pr.pty != nil {
			pr.pty.Close()
		}
		pr.copies.Wait()
		for _, c := range []net.Conn{in, out, errc} {
			if c != nil {
				c.Close()
			}
		}
		pr.at = time.Now()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				pr.status = 128 + uint32(ws.Signal())
			} else {
				pr.status = uint32(ee.ExitCode())
			}
		}
		close(pr.done)
	}()
	return &api.StartResponse{Pid: uint32(cmd.Process.Pid)}, nil
}

func (a *agent) get(cid, eid string) (*proc, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.procs[key(cid, eid)]
	if p == nil {
		return nil, fmt.Errorf("process %s not found", key(cid, eid))
	}
	return p, nil
}

func (a *agent) WaitProcess(ctx context.Context, r *api.ProcessRequest) (*api.WaitResponse, error) {
	p, err := a.get(r.ContainerId, r.ExecId)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.done:
		return &api.WaitResponse{ExitStatus: p.status, ExitedAtUnixNano: p.at.UnixNano()}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (a *agent) SignalProcess(_ context.Context, r *api.SignalRequest) (*api.Empty, error) {
	p, err := a.get(r.ContainerId, r.ExecId)
	if err != nil {
		return nil, err
	}
	return &api.Empty{}, p.cmd.Process.Signal(syscall.Signal(r.Signal))
}

func (a *agent) ResizeTTY(_ context.Context, r *api.ResizeTTYRequest) (*api.Empty, error) {
	p, err := a.get(r.ContainerId, r.ExecId)
	if err != nil {
		return nil, err
	}
	if p.pty == nil {
		return nil, errors.New("no tty")
	}
	return &api.Empty{}, pty.Setsize(p.pty, &pty.Winsize{Cols: uint16(r.Width), Rows: uint16(r.Height)})
}

func (a *agent) RemoveContainer(_ context.Context, r *api.RemoveContainerRequest) (*api.Empty, error) {
	a.mu.Lock()
	delete(a.specs, r.ContainerId)
	a.mu.Unlock()
	return &api.Empty{}, nil
}

func (a *agent) ListPids(_ context.Context, r *api.ContainerRequest) (*api.ListPidsResponse, error) {
	p, err := a.get(r.ContainerId, "")
	if err != nil {
		return nil, err
	}
	return &api.ListPidsResponse{Pids: []uint32{uint32(p.cmd.Process.Pid)}}, nil
}

func (a *agent) killAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range a.procs {
		_ = p.cmd.Process.Kill()
	}
}
