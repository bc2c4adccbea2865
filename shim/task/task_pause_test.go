package task

import (
	"reflect"
	"syscall"
	"testing"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/core/events"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// pauseEvents returns the TaskPaused and TaskResumed events published so
// far, as "paused:ID" and "resumed:ID". A marker event sent last and
// waited for makes sure everything sent before it was published.
func (f *fixture) pauseEvents(t *testing.T) []string {
	t.Helper()
	f.svc.send(&eventstypes.TaskCheckpointed{ContainerID: "marker"})
	f.pub.waitFor(t, "marker", func(e events.Event) bool {
		x, ok := e.(*eventstypes.TaskCheckpointed)
		return ok && x.ContainerID == "marker"
	})
	f.pub.mu.Lock()
	defer f.pub.mu.Unlock()
	var got []string
	for _, e := range f.pub.events {
		switch x := e.(type) {
		case *eventstypes.TaskPaused:
			got = append(got, "paused:"+x.ContainerID)
		case *eventstypes.TaskResumed:
			got = append(got, "resumed:"+x.ContainerID)
		}
	}
	return got
}

func (f *fixture) status(t *testing.T, id, execID string) task.Status {
	t.Helper()
	st, err := f.svc.State(f.ctx, &taskAPI.StateRequest{ID: id, ExecID: execID})
	if err != nil {
		t.Fatalf("State %s %s: %v", id, execID, err)
	}
	return st.Status
}

// agentPausing returns the agent's PauseContainer and ResumeContainer
// calls so far.
func (f *fixture) agentPausing() []string {
	f.agent.mu.Lock()
	defer f.agent.mu.Unlock()
	return append([]string(nil), f.agent.pausing...)
}

// mustPause pauses container id and fails the test on an error.
func (f *fixture) mustPause(t *testing.T, id string) {
	t.Helper()
	if _, err := f.svc.Pause(f.ctx, &taskAPI.PauseRequest{ID: id}); err != nil {
		t.Fatalf("Pause %s: %v", id, err)
	}
}

// vmKills is the number of KillVM calls so far.
func (f *fixture) vmKills() int {
	f.sb.mu.Lock()
	defer f.sb.mu.Unlock()
	return f.sb.vmKills
}

// signalCount is the number of SignalProcess calls so far.
func (f *fixture) signalCount() int {
	f.agent.mu.Lock()
	defer f.agent.mu.Unlock()
	return len(f.agent.signals)
}

func codeOf(err error) codes.Code { return status.Code(err) }

func TestPauseResume(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "agent gone")
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, f *fixture)
		// wantEvents are the TaskPaused/TaskResumed events; wantAgent the
		// agent's PauseContainer/ResumeContainer calls.
		wantEvents []string
		wantAgent  []string
	}{
		{
			name: "pause then resume",
			run: func(t *testing.T, f *fixture) {
				f.createAndStart(t, "c1", "")
				if _, err := f.svc.Pause(f.ctx, &taskAPI.PauseRequest{ID: "c1"}); err != nil {
					t.Fatalf("Pause: %v", err)
				}
				if st := f.status(t, "c1", ""); st != task.Status_PAUSED {
					t.Fatalf("paused task is %v", st)
				}
				if _, err := f.svc.Resume(f.ctx, &taskAPI.ResumeRequest{ID: "c1"}); err != nil {
					t.Fatalf("Resume: %v", err)
				}
				if st := f.status(t, "c1", ""); st != task.Status_RUNNING {
					t.Fatalf("resumed task is %v", st)
				}
			},
			wantEvents: []string{"paused:c1", "resumed:c1"}, wantAgent: []string{"pause:c1", "resume:c1"},
		},
		{
			name: "agent refuses: its error, still running",
			run: func(t *testing.T, f *fixture) {
				f.agent.pauseErr = status.Error(codes.FailedPrecondition, "not running")
				f.createAndStart(t, "c1", "")
				_, err := f.svc.Pause(f.ctx, &taskAPI.PauseRequest{ID: "c1"})
				if codeOf(err) != codes.FailedPrecondition {
					t.Fatalf("Pause: %v, want FailedPrecondition", err)
				}
				if st := f.status(t, "c1", ""); st != task.Status_RUNNING {
					t.Fatalf("task is %v", st)
				}
			},
			wantAgent: []string{"pause:c1"},
		},
		{
			name: "created task: FailedPrecondition",
			run: func(t *testing.T, f *fixture) {
				if _, err := f.svc.Create(f.ctx, &taskAPI.CreateTaskRequest{ID: "c1", Bundle: f.bundle}); err != nil {
					t.Fatal(err)
				}
				if _, err := f.svc.Pause(f.ctx, &taskAPI.PauseRequest{ID: "c1"}); codeOf(err) != codes.FailedPrecondition {
					t.Fatalf("Pause: %v, want FailedPrecondition", err)
				}
			},
		},
		{
			name: "unknown task: NotFound",
			run: func(t *testing.T, f *fixture) {
				if _, err := f.svc.Pause(f.ctx, &taskAPI.PauseRequest{ID: "nope"}); codeOf(err) != codes.NotFound {
					t.Fatalf("Pause: %v, want NotFound", err)
				}
				if _, err := f.svc.Resume(f.ctx, &taskAPI.ResumeRequest{ID: "nope"}); codeOf(err) != codes.NotFound {
					t.Fatalf("Resume: %v, want NotFound", err)
				}
			},
		},
		{
			name: "twice, or resume of a running task: FailedPrecondition",
			run: func(t *testing.T, f *fixture) {
				f.createAndStart(t, "c1", "")
				if _, err := f.svc.Resume(f.ctx, &taskAPI.ResumeRequest{ID: "c1"}); codeOf(err) != codes.FailedPrecondition {
					t.Fatalf("Resume of running: %v, want FailedPrecondition", err)
				}
				f.mustPause(t, "c1")
				if _, err := f.svc.Pause(f.ctx, &taskAPI.PauseRequest{ID: "c1"}); codeOf(err) != codes.FailedPrecondition {
					t.Fatalf("second Pause: %v, want FailedPrecondition", err)
				}
			},
			wantEvents: []string{"paused:c1"}, wantAgent: []string{"pause:c1"},
		},
		{
			name: "resume fails: still paused",
			run: func(t *testing.T, f *fixture) {
				f.createAndStart(t, "c1", "")
				f.mustPause(t, "c1")
				f.agent.resumeErr = unavailable
				if _, err := f.svc.Resume(f.ctx, &taskAPI.ResumeRequest{ID: "c1"}); codeOf(err) != codes.Unavailable {
					t.Fatalf("Resume: %v, want Unavailable", err)
				}
				if st := f.status(t, "c1", ""); st != task.Status_PAUSED {
					t.Fatalf("task is %v", st)
				}
			},
			wantEvents: []string{"paused:c1"}, wantAgent: []string{"pause:c1", "resume:c1"},
		},
		{
			name: "two tasks of a pod pause apart",
			run: func(t *testing.T, f *fixture) {
				f.inPod(t)
				f.createAndStart(t, "c1", "")
				f.createAndStart(t, "c2", "")
				for _, id := range []string{"c1", "c2"} {
					if _, err := f.svc.Pause(f.ctx, &taskAPI.PauseRequest{ID: id}); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := f.svc.Resume(f.ctx, &taskAPI.ResumeRequest{ID: "c1"}); err != nil {
					t.Fatal(err)
				}
				if a, b := f.status(t, "c1", ""), f.status(t, "c2", ""); a != task.Status_RUNNING || b != task.Status_PAUSED {
					t.Fatalf("c1 %v, c2 %v", a, b)
				}
				if _, err := f.svc.Resume(f.ctx, &taskAPI.ResumeRequest{ID: "c2"}); err != nil {
					t.Fatal(err)
				}
			},
			wantEvents: []string{"paused:c1", "paused:c2", "resumed:c1", "resumed:c2"},
			wantAgent:  []string{"pause:c1", "pause:c2", "resume:c1", "resume:c2"},
		},
		{
			name: "exec into a paused task fails; a running exec shows PAUSED",
			run: func(t *testing.T, f *fixture) {
				f.createAndStart(t, "c1", "")
				f.startExec(t, "e1")
				f.mustPause(t, "c1")
				if st := f.status(t, "c1", "e1"); st != task.Status_PAUSED {
					t.Fatalf("exec of a paused task is %v", st)
				}
				if _, err := f.svc.Exec(f.ctx, f.execRequest("c1", "e2")); codeOf(err) != codes.FailedPrecondition {
					t.Fatalf("Exec: %v, want FailedPrecondition", err)
				}
			},
			wantEvents: []string{"paused:c1"}, wantAgent: []string{"pause:c1"},
		},
		{
			name: "the guest still answers while a task is paused",
			run: func(t *testing.T, f *fixture) {
				f.createAndStart(t, "c1", "")
				f.mustPause(t, "c1")
				if _, err := f.svc.Kill(f.ctx, &taskAPI.KillRequest{ID: "c1", Signal: uint32(syscall.SIGTERM)}); err != nil {
					t.Fatalf("SIGTERM: %v", err)
				}
				n := f.signalCount()
				if n != 1 {
					t.Fatalf("%d signals reached the guest, want 1", n)
				}
			},
			wantEvents: []string{"paused:c1"}, wantAgent: []string{"pause:c1"},
		},
		{
			name: "SIGKILL of a paused task resumes it first",
			run: func(t *testing.T, f *fixture) {
				f.createAndStart(t, "c1", "")
				f.mustPause(t, "c1")
				if _, err := f.svc.Kill(f.ctx, &taskAPI.KillRequest{ID: "c1", Signal: uint32(syscall.SIGKILL), All: true}); err != nil {
					t.Fatalf("SIGKILL: %v", err)
				}
				n := f.signalCount()
				if n != 1 {
					t.Fatalf("signals %d, want 1", n)
				}
				if st := f.status(t, "c1", ""); st != task.Status_RUNNING {
					t.Fatalf("killed (not yet exited) task is %v", st)
				}
			},
			wantEvents: []string{"paused:c1", "resumed:c1"}, wantAgent: []string{"pause:c1", "resume:c1"},
		},
		{
			name: "SIGKILL of a paused task the agent cannot resume ends the VM",
			run: func(t *testing.T, f *fixture) {
				f.createAndStart(t, "c1", "")
				f.mustPause(t, "c1")
				f.agent.resumeErr = unavailable
				if _, err := f.svc.Kill(f.ctx, &taskAPI.KillRequest{ID: "c1", Signal: uint32(syscall.SIGKILL), All: true}); err != nil {
					t.Fatalf("SIGKILL: %v", err)
				}
				kills := f.vmKills()
				if kills != 1 {
					t.Fatalf("KillVM calls %d, want 1", kills)
				}
				f.pub.waitFor(t, "TaskExit", isExit("c1"))
			},
			wantEvents: []string{"paused:c1"}, wantAgent: []string{"pause:c1", "resume:c1"},
		},
		{
			name: "a paused task whose VM died is deleted",
			run: func(t *testing.T, f *fixture) {
				f.createAndStart(t, "c1", "")
				f.mustPause(t, "c1")
				f.sb.die()
				f.pub.waitFor(t, "TaskExit", isExit("c1"))
				if _, err := f.svc.Delete(f.ctx, &taskAPI.DeleteRequest{ID: "c1"}); err != nil {
					t.Fatalf("Delete: %v", err)
				}
			},
			wantEvents: []string{"paused:c1", "resumed:c1"}, wantAgent: []string{"pause:c1"},
		},
		{
			name: "a SIGKILL the guest already thawed for: the mark goes, no VM killed",
			run: func(t *testing.T, f *fixture) {
				f.createAndStart(t, "c1", "")
				f.mustPause(t, "c1")
				f.agent.resumeErr = status.Error(codes.FailedPrecondition, "not paused")
				if _, err := f.svc.Kill(f.ctx, &taskAPI.KillRequest{ID: "c1", Signal: uint32(syscall.SIGKILL)}); err != nil {
					t.Fatalf("SIGKILL: %v", err)
				}
				kills := f.vmKills()
				if kills != 0 {
					t.Fatalf("KillVM calls %d, want 0", kills)
				}
				f.agent.exitChan("c1") <- 137
				f.pub.waitFor(t, "TaskExit", isExit("c1"))
				if _, err := f.svc.Delete(f.ctx, &taskAPI.DeleteRequest{ID: "c1"}); err != nil {
					t.Fatalf("Delete: %v", err)
				}
			},
			wantEvents: []string{"paused:c1", "resumed:c1"}, wantAgent: []string{"pause:c1", "resume:c1"},
		},
		{
			name: "a SIGKILL whose resume the agent refuses otherwise is still sent",
			run: func(t *testing.T, f *fixture) {
				f.createAndStart(t, "c1", "")
				f.mustPause(t, "c1")
				f.agent.resumeErr = status.Error(codes.Internal, "freezer broke")
				if _, err := f.svc.Kill(f.ctx, &taskAPI.KillRequest{ID: "c1", Signal: uint32(syscall.SIGKILL)}); err != nil {
					t.Fatalf("SIGKILL: %v", err)
				}
				n := f.signalCount()
				if n != 1 {
					t.Fatalf("signals %d, want 1", n)
				}
			},
			wantEvents: []string{"paused:c1"}, wantAgent: []string{"pause:c1", "resume:c1"},
		},
		{
			name: "Delete of another task leaves a paused one paused",
			run: func(t *testing.T, f *fixture) {
				f.inPod(t)
				f.createAndStart(t, "c1", "")
				f.createAndStart(t, "c2", "")
				f.agent.exitChan("c2") <- 0
				f.pub.waitFor(t, "TaskExit", isExit("c2"))
				f.mustPause(t, "c1")
				if _, err := f.svc.Delete(f.ctx, &taskAPI.DeleteRequest{ID: "c2"}); err != nil {
					t.Fatalf("Delete: %v", err)
				}
				if f.agent.count("RemoveContainer") != 1 {
					t.Fatalf("guest did not remove c2")
				}
				if st := f.status(t, "c1", ""); st != task.Status_PAUSED {
					t.Fatalf("c1 is %v", st)
				}
			},
			wantEvents: []string{"paused:c1"}, wantAgent: []string{"pause:c1"},
		},
		{
			name: "Delete of a paused running task is refused and keeps it paused",
			run: func(t *testing.T, f *fixture) {
				f.createAndStart(t, "c1", "")
				f.mustPause(t, "c1")
				if _, err := f.svc.Delete(f.ctx, &taskAPI.DeleteRequest{ID: "c1"}); codeOf(err) != codes.FailedPrecondition {
					t.Fatalf("Delete: %v, want FailedPrecondition", err)
				}
				if st := f.status(t, "c1", ""); st != task.Status_PAUSED {
					t.Fatalf("task is %v", st)
				}
			},
			wantEvents: []string{"paused:c1"}, wantAgent: []string{"pause:c1"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tc.run(t, f)
			if got := f.pauseEvents(t); !reflect.DeepEqual(got, tc.wantEvents) {
				t.Errorf("events %v, want %v", got, tc.wantEvents)
			}
			if got := f.agentPausing(); !reflect.DeepEqual(got, tc.wantAgent) {
				t.Errorf("agent calls %v, want %v", got, tc.wantAgent)
			}
		})
	}
}
