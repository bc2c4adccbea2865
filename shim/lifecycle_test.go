package shim

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/core/events"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
)

// within fails the test when ch does not deliver in time (a safety net
// against deadlocks, not a synchronisation).
func within[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// inPod makes the fixture's bundle put its containers into one pod.
func (f *fixture) inPod(t *testing.T) {
	t.Helper()
	writeFile(t, f.bundle, specFile, `{"ociVersion":"1.0.2","annotations":{"io.containerd.veil.v2.group":"pod"}}`)
}

func (f *fixture) execRequest(id, execID string) *taskAPI.ExecProcessRequest {
	return &taskAPI.ExecProcessRequest{ID: id, ExecID: execID, Spec: &anypb.Any{Value: []byte(`{"args":["true"],"cwd":"/"}`)}}
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

// startExec registers and starts exec x of a running c1.
func (f *fixture) startExec(t *testing.T, execID string) {
	t.Helper()
	if _, err := f.svc.Exec(f.ctx, f.execRequest("c1", execID)); err != nil {
		t.Fatalf("exec: %v", err)
	}
	if _, err := f.svc.Start(f.ctx, &taskAPI.StartRequest{ID: "c1", ExecID: execID}); err != nil {
		t.Fatalf("start exec: %v", err)
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

// TestConcurrentStartsRunOnce: of two Starts of one process, only one
// reaches the agent; the other is refused at once.
func TestConcurrentStartsRunOnce(t *testing.T) {
	f := newFixture(t)
	if _, err := f.svc.Create(f.ctx, &taskAPI.CreateTaskRequest{ID: "c1", Bundle: f.bundle}); err != nil {
		t.Fatal(err)
	}
	gate := f.agent.gate("StartContainer")
	first := make(chan error, 1)
	go func() {
		_, err := f.svc.Start(f.ctx, &taskAPI.StartRequest{ID: "c1"})
		first <- err
	}()
	within(t, "first StartContainer", f.agent.entered)
	_, err := f.svc.Start(f.ctx, &taskAPI.StartRequest{ID: "c1"})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("second start: %v, want FailedPrecondition", err)
	}
	close(gate)
	if err := within(t, "first Start", first); err != nil {
		t.Fatal(err)
	}
	if n := f.agent.count("StartContainer"); n != 1 {
		t.Fatalf("StartContainer called %d times", n)
	}
}

// TestCreateBounded: stream dials carry a deadline (a deaf vsock device
// fails Create instead of hanging it), and a Create waiting on the agent
// does not hold up another container's Create.
func TestCreateBounded(t *testing.T) {
	t.Run("deaf stream dial", func(t *testing.T) {
		f := newFixture(t)
		f.inPod(t)
		path, _ := stdoutFifo(t)
		if _, err := f.svc.Create(f.ctx, &taskAPI.CreateTaskRequest{ID: "c0", Bundle: f.bundle}); err != nil {
			t.Fatal(err)
		}
		f.sb.mu.Lock()
		f.sb.deafDials = true
		f.sb.mu.Unlock()
		ctx, cancel := context.WithTimeout(f.ctx, time.Millisecond)
		defer cancel()
		// The request's own short deadline stands in for the dial limit,
		// which the undeadlined count checks.
		_, err := f.svc.Create(ctx, &taskAPI.CreateTaskRequest{ID: "c1", Bundle: f.bundle, Stdout: path})
		if err == nil || !strings.Contains(err.Error(), "dial stdout stream of c1") {
			t.Fatalf("create: %v", err)
		}
		f.sb.mu.Lock()
		f.sb.deafDials = false
		f.sb.mu.Unlock()
		// The failed Create left nothing behind: the id is free again.
		path2, _ := stdoutFifo(t)
		if _, err := f.svc.Create(f.ctx, &taskAPI.CreateTaskRequest{ID: "c1", Bundle: f.bundle, Stdout: path2}); err != nil {
			t.Fatalf("create after a failed one: %v", err)
		}
		f.sb.mu.Lock()
		defer f.sb.mu.Unlock()
		if f.sb.undeadlined != 0 {
			t.Fatalf("%d stream dials without a deadline", f.sb.undeadlined)
		}
	})
	t.Run("agent call does not hold the lifecycle lock", func(t *testing.T) {
		f := newFixture(t)
		f.inPod(t)
		if _, err := f.svc.Create(f.ctx, &taskAPI.CreateTaskRequest{ID: "c0", Bundle: f.bundle}); err != nil {
			t.Fatal(err)
		}
		gate := f.agent.gate("CreateContainer")
		slow := make(chan error, 1)
		go func() {
			_, err := f.svc.Create(f.ctx, &taskAPI.CreateTaskRequest{ID: "c1", Bundle: f.bundle})
			slow <- err
		}()
		within(t, "CreateContainer of c1", f.agent.entered)
		// The sandbox stays for c1 although c0, its only container, goes.
		deleted := make(chan error, 1)
		go func() {
			_, err := f.svc.Delete(f.ctx, &taskAPI.DeleteRequest{ID: "c0"})
			deleted <- err
		}()
		if err := within(t, "Delete of c0", deleted); err != nil {
			t.Fatal(err)
		}
		f.sb.mu.Lock()
		stopped := f.sb.stopped
		f.sb.mu.Unlock()
		if stopped {
			t.Fatal("sandbox stopped under a Create")
		}
		close(gate)
		if err := within(t, "Create of c1", slow); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.State(f.ctx, &taskAPI.StateRequest{ID: "c1"}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestStopFailureFallsBackToCleanup: a failed sandbox stop is followed by
// the launcher's Cleanup; Delete fails only when that fails too.
func TestStopFailureFallsBackToCleanup(t *testing.T) {
	cases := []struct {
		name        string
		stopErr     error
		cleanupErr  error
		wantCleanup bool
		wantErr     string
	}{
		{name: "stop works"},
		{name: "cleanup after failed stop", stopErr: errors.New("qemu did not exit"), wantCleanup: true},
		{name: "both fail", stopErr: errors.New("qemu did not exit"), cleanupErr: errors.New("state dir busy"), wantCleanup: true, wantErr: "state dir busy"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if _, err := f.svc.Create(f.ctx, &taskAPI.CreateTaskRequest{ID: "c1", Bundle: f.bundle}); err != nil {
				t.Fatal(err)
			}
			f.sb.stopErr = tc.stopErr
			f.l.cleanupErr = tc.cleanupErr
			_, err := f.svc.Delete(f.ctx, &taskAPI.DeleteRequest{ID: "c1"})
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "qemu did not exit")) {
				t.Fatalf("delete: %v, want %q", err, tc.wantErr)
			}
			f.l.mu.Lock()
			defer f.l.mu.Unlock()
			if cleaned := len(f.l.cleaned) == 1 && f.l.cleaned[0] == "c1"; cleaned != tc.wantCleanup {
				t.Fatalf("cleaned %v, want cleanup %v", f.l.cleaned, tc.wantCleanup)
			}
		})
	}
}

// TestHostileIDsRefused: ids that would lead outside the state dir are
// refused with InvalidArgument naming the id.
func TestHostileIDsRefused(t *testing.T) {
	cases := []struct {
		name, id, group, execID, want string
	}{
		{name: "container dot-dot", id: "..", want: `invalid container id ".."`},
		{name: "container slash", id: "a/b", want: `invalid container id "a/b"`},
		{name: "group escapes", id: "c1", group: "../..", want: `invalid sandbox id "../.."`},
		{name: "exec slash", id: "c1", execID: "../x", want: `invalid exec id "../x"`},
		{name: "exec empty", id: "c1", execID: "", want: `invalid exec id ""`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if tc.group != "" {
				spec := `{"ociVersion":"1.0.2","annotations":{"io.containerd.veil.v2.group":"` + tc.group + `"}}`
				writeFile(t, f.bundle, specFile, spec)
			}
			_, err := f.svc.Create(f.ctx, &taskAPI.CreateTaskRequest{ID: tc.id, Bundle: f.bundle})
			if tc.execID != "" || strings.Contains(tc.name, "exec") {
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.svc.Start(f.ctx, &taskAPI.StartRequest{ID: tc.id}); err != nil {
					t.Fatal(err)
				}
				_, err = f.svc.Exec(f.ctx, f.execRequest(tc.id, tc.execID))
			}
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want InvalidArgument %q", err, tc.want)
			}
			if f.share.count() != 0 && !strings.Contains(tc.name, "exec") {
				t.Fatalf("mounted %v", f.share.added)
			}
		})
	}
}

func TestValidateID(t *testing.T) {
	cases := []struct {
		name, id string
		ok       bool
	}{
		{name: "plain", id: "c1", ok: true},
		{name: "cri sandbox id", id: strings.Repeat("ab", 32), ok: true},
		{name: "containerd's rule: one separator at a time", id: "a..b"},
		{name: "separators inside", id: "a.b-c_d", ok: true},
		{name: "empty", id: ""},
		{name: "dot", id: "."},
		{name: "dot-dot", id: ".."},
		{name: "slash", id: "a/b"},
		{name: "nul", id: "a\x00b"},
		{name: "too long", id: strings.Repeat("x", 77)},
		{name: "longest", id: strings.Repeat("x", 76), ok: true},
		{name: "option-like", id: "--version"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := validateID("container id", tc.id)
			if (err == nil) != tc.ok {
				t.Fatalf("validateID(%q) = %v", tc.id, err)
			}
			if err != nil && (status.Code(toService(err)) != codes.InvalidArgument || !strings.Contains(err.Error(), "container id")) {
				t.Fatalf("error %v is not an InvalidArgument naming the id", err)
			}
		})
	}
}

// TestCleanupStateRefusesHostileIDs: the delete action never builds paths
// from ids that leave the state dir.
func TestCleanupStateRefusesHostileIDs(t *testing.T) {
	cases := []struct {
		name, id, spec, want string
	}{
		{name: "group annotation", id: "c1", spec: `{"annotations":{"io.containerd.veil.v2.group":"../.."}}`, want: `invalid sandbox id "../.."`},
		{name: "cri sandbox id", id: "c1", spec: `{"annotations":{"io.kubernetes.cri.sandbox-id":"a/../../b"}}`, want: `invalid sandbox id "a/../../b"`},
		{name: "container id", id: "..", want: `invalid container id ".."`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bundle := t.TempDir()
			if tc.spec != "" {
				writeFile(t, bundle, specFile, tc.spec)
			}
			_, err := cleanupState(bundle, tc.id, "/state")
			if err == nil || !strings.Contains(err.Error(), tc.want) || status.Code(toService(err)) != codes.InvalidArgument {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestParseStatStartTime(t *testing.T) {
	fields := func(comm string) string {
		// pid (comm) state, then fields 4..21, then starttime (22), then more.
		return "42 (" + comm + ") S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 987654 19 20"
	}
	cases := []struct {
		name, stat string
		want       uint64
		wantErr    bool
	}{
		{name: "plain", stat: fields("containerd-shim"), want: 987654},
		{name: "comm with spaces and parens", stat: fields("a) (b c"), want: 987654},
		{name: "truncated", stat: "42 (x) S 1 2", wantErr: true},
		{name: "no comm", stat: "garbage", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatStartTime(tc.stat)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("got %d, %v; want %d (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestSameProcess(t *testing.T) {
	self, err := processStartTime(syscall.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		pid   int
		start uint64
		want  bool
	}{
		{name: "same", pid: syscall.Getpid(), start: self, want: true},
		{name: "pid reused", pid: syscall.Getpid(), start: self + 1},
		{name: "gone", pid: 1 << 30, start: self},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := sameProcess(tc.pid, tc.start); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestCreateRecordsShimStartTime: the bundle record names the shim by pid
// and start time.
func TestCreateRecordsShimStartTime(t *testing.T) {
	f := newFixture(t)
	if _, err := f.svc.Create(f.ctx, &taskAPI.CreateTaskRequest{ID: "c1", Bundle: f.bundle}); err != nil {
		t.Fatal(err)
	}
	st, err := readShimState(f.bundle)
	if err != nil {
		t.Fatal(err)
	}
	if st.ShimPid != syscall.Getpid() || !sameProcess(st.ShimPid, st.ShimStartTime) {
		t.Fatalf("record %+v does not name this process", st)
	}
}

func writeFile(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}
