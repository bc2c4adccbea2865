package task

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/veil-runtime/veil/shim/bundle"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

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
				writeFile(t, f.bundle, bundle.SpecFile, spec)
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

// TestCreateRecordsShimStartTime: the bundle record names the shim by pid
// and start time.
func TestCreateRecordsShimStartTime(t *testing.T) {
	f := newFixture(t)
	if _, err := f.svc.Create(f.ctx, &taskAPI.CreateTaskRequest{ID: "c1", Bundle: f.bundle}); err != nil {
		t.Fatal(err)
	}
	st, err := bundle.ReadShimState(f.bundle)
	if err != nil {
		t.Fatal(err)
	}
	start, err := bundle.ProcessStartTime(syscall.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.ShimPid != syscall.Getpid() || st.ShimStartTime != start {
		t.Fatalf("record %+v does not name this process", st)
	}
}
