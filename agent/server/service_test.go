package server

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/agent/container"
)

// fakeGuest records sandbox-level calls instead of touching the host.
type fakeGuest struct{ hostname, tag, mounted string }

func (g *fakeGuest) SetHostname(n string) error { g.hostname = n; return nil }
func (g *fakeGuest) MountShare(_ context.Context, tag, dir string) error {
	g.tag, g.mounted = tag, dir
	return nil
}
func (g *fakeGuest) MountTmpfs(context.Context, string, uint64) error { return nil }
func (g *fakeGuest) UnmountShare(context.Context, string) error       { g.mounted = ""; return nil }

// fakeContainers answers from fixed values and records RemoveAll and
// RemoveProcess.
type fakeContainers struct {
	removedAll       bool
	startErr         error
	exit             container.Exit
	removeProcessErr error
	removedProcess   string // "container/exec" of the last RemoveProcess
}

func (f *fakeContainers) Create(context.Context, string, []byte, container.CreateOptions) error {
	return nil
}
func (f *fakeContainers) Start(context.Context, string) (int, error) { return 42, f.startErr }
func (f *fakeContainers) Exec(context.Context, string, string, []byte, container.Stdio) (int, error) {
	return 43, nil
}
func (f *fakeContainers) Wait(context.Context, string, string) (container.Exit, error) {
	return f.exit, nil
}
func (f *fakeContainers) Signal(context.Context, string, string, syscall.Signal, bool) error {
	return nil
}
func (f *fakeContainers) CloseStdin(context.Context, string, string) error { return nil }
func (f *fakeContainers) Resize(context.Context, string, string, uint32, uint32) error {
	return nil
}
func (f *fakeContainers) Pids(context.Context, string) ([]int, error)  { return []int{1, 7}, nil }
func (f *fakeContainers) Pause(context.Context, string) error          { return nil }
func (f *fakeContainers) Resume(context.Context, string) error         { return nil }
func (f *fakeContainers) Remove(context.Context, string, bool) error   { return nil }
func (f *fakeContainers) Update(context.Context, string, []byte) error { return nil }
func (f *fakeContainers) RemoveProcess(_ context.Context, id, execID string) error {
	f.removedProcess = id + "/" + execID
	return f.removeProcessErr
}
func (f *fakeContainers) RemoveAll(context.Context) error {
	f.removedAll = true
	return nil
}

func TestSandboxLifecycle(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		run  func(s *Service) error
		want codes.Code
	}{
		{name: "empty sandbox id", run: func(s *Service) error {
			_, err := s.CreateSandbox(ctx, &api.CreateSandboxRequest{})
			return err
		}, want: codes.InvalidArgument},
		{name: "second sandbox", run: func(s *Service) error {
			if _, err := s.CreateSandbox(ctx, &api.CreateSandboxRequest{SandboxId: "a"}); err != nil {
				return err
			}
			_, err := s.CreateSandbox(ctx, &api.CreateSandboxRequest{SandboxId: "b"})
			return err
		}, want: codes.AlreadyExists},
		{name: "destroy of another sandbox", run: func(s *Service) error {
			if _, err := s.CreateSandbox(ctx, &api.CreateSandboxRequest{SandboxId: "a"}); err != nil {
				return err
			}
			_, err := s.DestroySandbox(ctx, &api.DestroySandboxRequest{SandboxId: "b"})
			return err
		}, want: codes.NotFound},
		{name: "create then destroy then create", run: func(s *Service) error {
			for range 2 {
				if _, err := s.CreateSandbox(ctx, &api.CreateSandboxRequest{SandboxId: "a", Hostname: "h", SharedFsTag: "veil"}); err != nil {
					return err
				}
				if _, err := s.DestroySandbox(ctx, &api.DestroySandboxRequest{SandboxId: "a"}); err != nil {
					return err
				}
			}
			return nil
		}, want: codes.OK},
		{name: "signal 0 refused", run: func(s *Service) error {
			_, err := s.SignalProcess(ctx, &api.SignalRequest{ContainerId: "c", Signal: 0})
			return err
		}, want: codes.InvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := NewService("v", &fakeContainers{}, &fakeGuest{})
			if got := status.Code(tc.run(s)); got != tc.want {
				t.Fatalf("code %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDestroySandboxCleansUp(t *testing.T) {
	ctx := context.Background()
	c, g := &fakeContainers{}, &fakeGuest{}
	s := NewService("v", c, g)
	if _, err := s.CreateSandbox(ctx, &api.CreateSandboxRequest{SandboxId: "a", Hostname: "pod", SharedFsTag: "veil"}); err != nil {
		t.Fatal(err)
	}
	if g.hostname != "pod" || g.tag != "veil" || g.mounted != api.SharedDir {
		t.Fatalf("guest after create: %+v", g)
	}
	if _, err := s.DestroySandbox(ctx, &api.DestroySandboxRequest{SandboxId: "a"}); err != nil {
		t.Fatal(err)
	}
	if !c.removedAll || g.mounted != "" {
		t.Fatalf("after destroy: removedAll=%v mounted=%q", c.removedAll, g.mounted)
	}
}

func TestProcessResponses(t *testing.T) {
	ctx := context.Background()
	at := time.Unix(100, 5)
	c := &fakeContainers{exit: container.Exit{Status: 137, At: at}, startErr: fmt.Errorf("start container c: %w", errdefs.ErrNotFound)}
	s := NewService("v", c, &fakeGuest{})
	w, err := s.WaitProcess(ctx, &api.ProcessRequest{ContainerId: "c"})
	if err != nil || w.ExitStatus != 137 || w.ExitedAtUnixNano != at.UnixNano() {
		t.Fatalf("wait = %v, %v", w, err)
	}
	if _, err := s.StartContainer(ctx, &api.ContainerRequest{ContainerId: "c"}); status.Code(err) != codes.NotFound {
		t.Fatalf("start = %v", err)
	}
	p, err := s.ListPids(ctx, &api.ContainerRequest{ContainerId: "c"})
	if err != nil || len(p.Pids) != 2 || p.Pids[1] != 7 {
		t.Fatalf("pids = %v, %v", p, err)
	}
	h, err := s.Health(ctx, &api.HealthRequest{})
	if err != nil || h.ApiVersion != api.APIVersion || h.KernelRelease == "" {
		t.Fatalf("health = %v, %v", h, err)
	}
}

func TestRemoveProcess(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want codes.Code
	}{
		{name: "exited exec removed", want: codes.OK},
		{name: "running exec", err: fmt.Errorf("remove exec e: it still runs: %w", errdefs.ErrFailedPrecondition), want: codes.FailedPrecondition},
		{name: "unknown exec", err: fmt.Errorf("exec e in container c: %w", errdefs.ErrNotFound), want: codes.NotFound},
		{name: "init process", err: fmt.Errorf("use RemoveContainer: %w", errdefs.ErrInvalidArgument), want: codes.InvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &fakeContainers{removeProcessErr: tc.err}
			s := NewService("v", c, &fakeGuest{})
			_, err := s.RemoveProcess(context.Background(), &api.ProcessRequest{ContainerId: "c", ExecId: "e"})
			if got := status.Code(err); got != tc.want {
				t.Fatalf("code %v (%v), want %v", got, err, tc.want)
			}
			if c.removedProcess != "c/e" {
				t.Fatalf("manager asked to remove %q, want c/e", c.removedProcess)
			}
		})
	}
}
