package task

import (
	"context"
	"errors"
	"syscall"
	"testing"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestKillUnresponsiveAgent: a SIGKILL the agent does not answer in time
// ends the VM and succeeds (the task exits 255); any other signal, or
// another failure, is reported and leaves the VM alone.
func TestKillUnresponsiveAgent(t *testing.T) {
	timeout := status.Error(codes.DeadlineExceeded, "agent did not answer SignalProcess within 60s")
	cases := []struct {
		name       string
		signal     syscall.Signal
		agentErr   error
		wantErr    error // nil: Kill succeeds
		wantVMKill bool
	}{
		{name: "SIGKILL unanswered ends the VM", signal: syscall.SIGKILL, agentErr: timeout, wantVMKill: true},
		{name: "SIGTERM unanswered is an error", signal: syscall.SIGTERM, agentErr: timeout, wantErr: context.DeadlineExceeded},
		{name: "SIGKILL refused is an error", signal: syscall.SIGKILL, agentErr: status.Error(codes.PermissionDenied, "no"), wantErr: errors.New("any")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.createAndStart(t, "c1", "")
			f.agent.mu.Lock()
			f.agent.signalErr = tc.agentErr
			f.agent.mu.Unlock()
			_, err := f.svc.Kill(f.ctx, &taskAPI.KillRequest{ID: "c1", Signal: uint32(tc.signal)})
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("Kill: %v, want success", err)
			case tc.wantErr != nil && err == nil:
				t.Fatal("Kill succeeded, want an error")
			case errors.Is(tc.wantErr, context.DeadlineExceeded) && status.Code(err) != codes.DeadlineExceeded:
				t.Fatalf("Kill: %v (code %s), want DeadlineExceeded", err, status.Code(err))
			}
			f.sb.mu.Lock()
			kills := f.sb.vmKills
			f.sb.mu.Unlock()
			if got := kills > 0; got != tc.wantVMKill {
				t.Fatalf("VM killed %v, want %v", got, tc.wantVMKill)
			}
			if tc.wantVMKill {
				ev := f.pub.waitFor(t, "TaskExit", isExit("c1")).(*eventstypes.TaskExit)
				if ev.ExitStatus != vmDeathExitStatus {
					t.Fatalf("exit status %d, want %d", ev.ExitStatus, vmDeathExitStatus)
				}
			}
		})
	}
}

// TestKillAfterVMDeath: a signal to a task whose VM just died (a kubelet's
// stop racing the crash) answers "process already finished" (NotFound,
// which containerd's CRI takes as stopped) instead of an error that
// would fail StopPodSandbox.
func TestKillAfterVMDeath(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			f := newFixture(t)
			f.createAndStart(t, "c1", "")
			f.sb.die()
			_, err := f.svc.Kill(f.ctx, &taskAPI.KillRequest{ID: "c1", Signal: uint32(sig)})
			if status.Code(err) != codes.NotFound {
				t.Fatalf("Kill after the VM died: %v (code %s), want NotFound", err, status.Code(err))
			}
		})
	}
}
