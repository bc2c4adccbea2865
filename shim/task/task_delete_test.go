package task

import (
	"context"
	"errors"
	"testing"

	"syscall"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/core/events"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestDeleteLastContainerStopsSandbox(t *testing.T) {
	cases := []struct {
		name  string
		start bool
	}{
		{name: "never started", start: false},
		{name: "exited", start: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if _, err := f.svc.Create(f.ctx, &taskAPI.CreateTaskRequest{ID: "c1", Bundle: f.bundle}); err != nil {
				t.Fatal(err)
			}
			if tc.start {
				if _, err := f.svc.Start(f.ctx, &taskAPI.StartRequest{ID: "c1"}); err != nil {
					t.Fatal(err)
				}
				_, err := f.svc.Delete(f.ctx, &taskAPI.DeleteRequest{ID: "c1"})
				if status.Code(err) != codes.FailedPrecondition {
					t.Fatalf("delete of running container: %v", err)
				}
				f.agent.exitChan("c1") <- 0
				f.pub.waitFor(t, "TaskExit", isExit("c1"))
			}
			if _, err := f.svc.Delete(f.ctx, &taskAPI.DeleteRequest{ID: "c1"}); err != nil {
				t.Fatal(err)
			}
			f.sb.mu.Lock()
			stopped := f.sb.stopped
			f.sb.mu.Unlock()
			if !stopped || f.share.count() != 0 {
				t.Fatalf("stopped=%v mounted=%v", stopped, f.share.added)
			}
			if len(f.agent.removed) != 1 {
				t.Fatalf("agent removed %v", f.agent.removed)
			}
			_, err := f.svc.State(f.ctx, &taskAPI.StateRequest{ID: "c1"})
			if status.Code(err) != codes.NotFound {
				t.Fatalf("state after delete: %v", err)
			}
			if errors.Is(err, context.Canceled) {
				t.Fatal(err)
			}
		})
	}
}

// TestDeleteForcesGuestRemoval: whatever the host believes of the init
// process, Delete has the agent remove the container with force; a start
// that failed kills what the agent may have started.
func TestDeleteForcesGuestRemoval(t *testing.T) {
	cases := []struct {
		name     string
		prepare  func(t *testing.T, f *fixture)
		wantKill bool
	}{
		{name: "never started", prepare: func(t *testing.T, f *fixture) {}},
		{name: "exited", prepare: func(t *testing.T, f *fixture) {
			if _, err := f.svc.Start(f.ctx, &taskAPI.StartRequest{ID: "c1"}); err != nil {
				t.Fatal(err)
			}
			f.agent.exitChan("c1") <- 0
			f.pub.waitFor(t, "TaskExit", isExit("c1"))
		}},
		{name: "wait failed (reported 255)", prepare: func(t *testing.T, f *fixture) {
			f.agent.waitErr = status.Error(codes.Unavailable, "connection reset")
			if _, err := f.svc.Start(f.ctx, &taskAPI.StartRequest{ID: "c1"}); err != nil {
				t.Fatal(err)
			}
			ev := f.pub.waitFor(t, "TaskExit", isExit("c1")).(*eventstypes.TaskExit)
			if ev.ExitStatus != vmDeathExitStatus {
				t.Fatalf("exit status %d", ev.ExitStatus)
			}
		}},
		{name: "start failed", wantKill: true, prepare: func(t *testing.T, f *fixture) {
			f.agent.startErr = status.Error(codes.DeadlineExceeded, "start timed out")
			if _, err := f.svc.Start(f.ctx, &taskAPI.StartRequest{ID: "c1"}); err == nil {
				t.Fatal("start succeeded")
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if _, err := f.svc.Create(f.ctx, &taskAPI.CreateTaskRequest{ID: "c1", Bundle: f.bundle}); err != nil {
				t.Fatal(err)
			}
			tc.prepare(t, f)
			if _, err := f.svc.Delete(f.ctx, &taskAPI.DeleteRequest{ID: "c1"}); err != nil {
				t.Fatal(err)
			}
			f.agent.mu.Lock()
			defer f.agent.mu.Unlock()
			if len(f.agent.removeReqs) != 1 || !f.agent.removeReqs[0].Force {
				t.Fatalf("RemoveContainer requests %v, want one forced", f.agent.removeReqs)
			}
			killed := false
			for _, s := range f.agent.signals {
				if s.ContainerId == "c1" && s.Signal == uint32(syscall.SIGKILL) && s.All {
					killed = true
				}
			}
			if killed != tc.wantKill {
				t.Fatalf("killed %v, want %v (signals %v)", killed, tc.wantKill, f.agent.signals)
			}
		})
	}
}

// TestDeleteKeepsContainerTheGuestKept: a container the agent refuses to
// remove stays mounted when other containers still use the sandbox.
func TestDeleteKeepsContainerTheGuestKept(t *testing.T) {
	cases := []struct {
		name      string
		err       error
		others    bool
		wantCode  codes.Code
		wantMount bool
	}{
		{name: "not found is removed", err: status.Error(codes.NotFound, "no container"), others: true, wantCode: codes.OK},
		{name: "refused with others left", err: status.Error(codes.Internal, "busy"), others: true, wantCode: codes.Internal, wantMount: true},
		{name: "refused as the last one", err: status.Error(codes.Internal, "busy"), wantCode: codes.OK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.inPod(t)
			for _, id := range []string{"c1", "c2"} {
				if id == "c2" && !tc.others {
					continue
				}
				if _, err := f.svc.Create(f.ctx, &taskAPI.CreateTaskRequest{ID: id, Bundle: f.bundle}); err != nil {
					t.Fatal(err)
				}
			}
			f.agent.removeContainerErr = tc.err
			_, err := f.svc.Delete(f.ctx, &taskAPI.DeleteRequest{ID: "c1"})
			if status.Code(err) != tc.wantCode {
				t.Fatalf("delete: %v, want %v", err, tc.wantCode)
			}
			mounted := f.share.has("c1")
			if mounted != tc.wantMount {
				t.Fatalf("c1 mounted %v, want %v", mounted, tc.wantMount)
			}
		})
	}
}

// TestDeleteExecRemovesGuestRecord: deleting an exited exec makes the
// agent forget it; NotFound counts as done, a process the guest still runs
// is killed first, and other failures keep the exec for a retry.
func TestDeleteExecRemovesGuestRecord(t *testing.T) {
	cases := []struct {
		name        string
		errs        []error
		wantCode    codes.Code
		wantRemoved int
		wantKill    bool
	}{
		{name: "removed", wantRemoved: 1},
		{name: "not found is success", errs: []error{status.Error(codes.NotFound, "no exec")}},
		{name: "still running in the guest", errs: []error{status.Error(codes.FailedPrecondition, "it still runs")}, wantRemoved: 1, wantKill: true},
		{name: "agent failure keeps the exec", errs: []error{status.Error(codes.Unavailable, "agent gone")}, wantCode: codes.Unavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.createAndStart(t, "c1", "")
			f.startExec(t, "x")
			f.agent.exitChan("c1/x") <- 0
			f.pub.waitFor(t, "exec TaskExit", func(e events.Event) bool {
				x, ok := e.(*eventstypes.TaskExit)
				return ok && x.ID == "x"
			})
			f.agent.mu.Lock()
			f.agent.removeProcessErrs = tc.errs
			f.agent.mu.Unlock()
			_, err := f.svc.Delete(f.ctx, &taskAPI.DeleteRequest{ID: "c1", ExecID: "x"})
			if status.Code(err) != tc.wantCode {
				t.Fatalf("delete exec: %v, want %v", err, tc.wantCode)
			}
			_, stateErr := f.svc.State(f.ctx, &taskAPI.StateRequest{ID: "c1", ExecID: "x"})
			if kept := stateErr == nil; kept != (tc.wantCode != codes.OK) {
				t.Fatalf("exec kept %v after delete error %v", kept, err)
			}
			f.agent.mu.Lock()
			defer f.agent.mu.Unlock()
			if len(f.agent.removedProcs) != tc.wantRemoved {
				t.Fatalf("removed %v, want %d", f.agent.removedProcs, tc.wantRemoved)
			}
			killed := false
			for _, s := range f.agent.signals {
				killed = killed || (s.ExecId == "x" && s.Signal == uint32(syscall.SIGKILL))
			}
			if killed != tc.wantKill {
				t.Fatalf("killed %v, want %v", killed, tc.wantKill)
			}
		})
	}
}

// TestTaskExitPrecedesTaskDelete: a client that deletes as soon as Wait
// returns sees TaskExit published before TaskDelete, for init and execs.
func TestTaskExitPrecedesTaskDelete(t *testing.T) {
	cases := []struct{ name, execID string }{
		{name: "init"},
		{name: "exec", execID: "x"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.createAndStart(t, "c1", "")
			if tc.execID != "" {
				f.startExec(t, tc.execID)
			}
			f.agent.exitChan(procName("c1", tc.execID)) <- 0
			wctx, cancel := context.WithTimeout(f.ctx, 5*time.Second)
			defer cancel()
			if _, err := f.svc.Wait(wctx, &taskAPI.WaitRequest{ID: "c1", ExecID: tc.execID}); err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.Delete(f.ctx, &taskAPI.DeleteRequest{ID: "c1", ExecID: tc.execID}); err != nil {
				t.Fatal(err)
			}
			if tc.execID != "" {
				f.agent.exitChan("c1") <- 0
				f.pub.waitFor(t, "init TaskExit", func(e events.Event) bool {
					x, ok := e.(*eventstypes.TaskExit)
					return ok && x.ID == "c1"
				})
				if _, err := f.svc.Delete(f.ctx, &taskAPI.DeleteRequest{ID: "c1"}); err != nil {
					t.Fatal(err)
				}
			}
			f.pub.waitFor(t, "TaskDelete", func(e events.Event) bool { _, ok := e.(*eventstypes.TaskDelete); return ok })
			f.pub.mu.Lock()
			defer f.pub.mu.Unlock()
			exitAt, deleteAt := -1, -1
			for i, e := range f.pub.events {
				switch x := e.(type) {
				case *eventstypes.TaskExit:
					if x.ID == processEventID(&process{containerID: "c1", execID: tc.execID}) && exitAt < 0 {
						exitAt = i
					}
				case *eventstypes.TaskDelete:
					deleteAt = i
				}
			}
			if exitAt < 0 || exitAt > deleteAt {
				t.Fatalf("TaskExit at %d, TaskDelete at %d: %v", exitAt, deleteAt, f.pub.events)
			}
		})
	}
}

// TestDeleteWaitsForExitAnnouncement: while an exit is being announced the
// process is not deletable yet; Delete's check waits for it.
func TestDeleteWaitsForExitAnnouncement(t *testing.T) {
	p := newProcess("c1", "", stdioPaths{}, nil)
	if err := p.markStarting(); err != nil {
		t.Fatal(err)
	}
	if err := p.markRunning(); err != nil {
		t.Fatal(err)
	}
	announcing, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		p.markExited(0, time.Now(), func(processStatus) {
			close(announcing)
			<-release
		})
	}()
	within(t, "announcement", announcing)

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := checkDeletable(cancelled, p); !errors.Is(err, context.Canceled) {
		t.Fatalf("check during the announcement: %v, want it to wait", err)
	}
	close(release)
	within(t, "markExited", done)
	if ps, err := checkDeletable(context.Background(), p); err != nil || ps.State != stateStopped {
		t.Fatalf("check after the announcement: %+v, %v", ps, err)
	}
}

// TestShutdownWaitsForDelete: containerd sends Shutdown after each
// task's Delete, so the Shutdown that follows one container's Delete may
// arrive while the last container's Delete is still stopping the
// sandbox. The shim must stay up until that Delete has answered, or
// containerd loses its reply.
func TestShutdownWaitsForDelete(t *testing.T) {
	f := newFixture(t)
	f.inPod(t)
	for _, id := range []string{"pause", "app"} {
		if _, err := f.svc.Create(f.ctx, &taskAPI.CreateTaskRequest{ID: id, Bundle: f.bundle}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.svc.Delete(f.ctx, &taskAPI.DeleteRequest{ID: "app"}); err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	f.sb.mu.Lock()
	f.sb.stopGate = gate
	f.sb.mu.Unlock()
	deleted := make(chan error, 1)
	go func() {
		_, err := f.svc.Delete(f.ctx, &taskAPI.DeleteRequest{ID: "pause"})
		deleted <- err
	}()
	<-gate // the last Delete is stopping the sandbox

	// The app's Shutdown overtakes the pause's Delete.
	if _, err := f.svc.Shutdown(f.ctx, &taskAPI.ShutdownRequest{ID: "app"}); err != nil {
		t.Fatal(err)
	}
	if n := f.sd.calls.Load(); n != 0 {
		t.Fatalf("shim shut down while a Delete was in progress (%d calls)", n)
	}
	gate <- struct{}{}
	if err := <-deleted; err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Shutdown(f.ctx, &taskAPI.ShutdownRequest{ID: "pause"}); err != nil {
		t.Fatal(err)
	}
	if n := f.sd.calls.Load(); n != 1 {
		t.Fatalf("shim not shut down after the last Delete (%d calls)", n)
	}
}
