package task

import (
	"context"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"reflect"

	"github.com/containerd/containerd/v2/core/events"
	"github.com/veil-runtime/veil/agent/api"
)

func TestExitPublishedAfterOutput(t *testing.T) {
	f := newFixture(t)
	path, r := stdoutFifo(t)
	f.createAndStart(t, "c1", path)

	out := f.sb.guestConn(t, "c1", api.StreamStdout)
	if _, err := out.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	f.agent.exitChan("c1") <- 3 // WaitProcess answers while output is still open

	_, p, err := f.svc.getProcess("c1", "")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
		t.Fatal("exit recorded before the stdout stream ended")
	case <-time.After(100 * time.Millisecond):
	}
	_ = out.Close()

	wctx, cancel := context.WithTimeout(f.ctx, 5*time.Second)
	defer cancel()
	w, err := f.svc.Wait(wctx, &taskAPI.WaitRequest{ID: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if w.ExitStatus != 3 {
		t.Fatalf("exit status %d, want 3", w.ExitStatus)
	}
	if err := syscall.SetNonblock(int(r.Fd()), false); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "hello\n" {
		t.Fatalf("stdout %q", got)
	}
	ev := f.pub.waitFor(t, "TaskExit", isExit("c1")).(*eventstypes.TaskExit)
	if ev.ExitStatus != 3 || ev.ID != "c1" || ev.Pid != 4242 {
		t.Fatalf("TaskExit %+v", ev)
	}
	// TaskStart precedes TaskExit.
	f.pub.mu.Lock()
	var order []string
	for _, e := range f.pub.events {
		switch e.(type) {
		case *eventstypes.TaskCreate:
			order = append(order, "create")
		case *eventstypes.TaskStart:
			order = append(order, "start")
		case *eventstypes.TaskExit:
			order = append(order, "exit")
		}
	}
	f.pub.mu.Unlock()
	if strings.Join(order, ",") != "create,start,exit" {
		t.Fatalf("event order %v", order)
	}
}

func TestStartErrorReachesClient(t *testing.T) {
	f := newFixture(t)
	f.agent.startErr = status.Error(codes.Unknown, `exec: "nosuchcmd": executable file not found in $PATH`)
	if _, err := f.svc.Create(f.ctx, &taskAPI.CreateTaskRequest{ID: "c1", Bundle: f.bundle}); err != nil {
		t.Fatal(err)
	}
	_, err := f.svc.Start(f.ctx, &taskAPI.StartRequest{ID: "c1"})
	if err == nil || !strings.Contains(err.Error(), "nosuchcmd") || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("start error %v", err)
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

// oomAgent answers WaitProcess with an OOM kill.
type oomAgent struct{ *fakeAgent }

func TestOOMPublishedBeforeExit(t *testing.T) {
	f := newFixture(t)
	f.l.sbOverride = &agentPodVM{fakePodVM: f.sb, agent: oomAgent{f.agent}}
	f.createAndStart(t, "c1", "")
	f.agent.exitChan(procName("c1", "")) <- 137
	f.pub.waitFor(t, "TaskExit", isExit("c1"))
	f.pub.mu.Lock()
	evs := append([]events.Event(nil), f.pub.events...)
	f.pub.mu.Unlock()
	var seen []string
	for _, e := range evs {
		switch x := e.(type) {
		case *eventstypes.TaskOOM:
			seen = append(seen, "oom:"+x.ContainerID)
		case *eventstypes.TaskExit:
			seen = append(seen, "exit:"+x.ContainerID)
		}
	}
	if !reflect.DeepEqual(seen, []string{"oom:c1", "exit:c1"}) {
		t.Fatalf("events %v, want TaskOOM before TaskExit", seen)
	}
}
