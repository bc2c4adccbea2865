package task

import (
	"context"
	"testing"
	"time"

	"errors"
	"strings"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestVMDeathExitsEveryProcess(t *testing.T) {
	f := newFixture(t)
	f.createAndStart(t, "c1", "")
	f.sb.die()

	wctx, cancel := context.WithTimeout(f.ctx, 5*time.Second)
	defer cancel()
	w, err := f.svc.Wait(wctx, &taskAPI.WaitRequest{ID: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if w.ExitStatus != vmDeathExitStatus {
		t.Fatalf("exit status %d, want %d", w.ExitStatus, vmDeathExitStatus)
	}
	f.pub.waitFor(t, "TaskExit", isExit("c1"))

	// Kill of the dead process says it finished; Delete still cleans up.
	_, err = f.svc.Kill(f.ctx, &taskAPI.KillRequest{ID: "c1", Signal: 15})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("kill after death: %v", err)
	}
	if _, err := f.svc.Delete(f.ctx, &taskAPI.DeleteRequest{ID: "c1"}); err != nil {
		t.Fatal(err)
	}
	if f.share.count() != 0 {
		t.Fatalf("still mounted: %v", f.share.added)
	}
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
