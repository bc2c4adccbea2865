package telemetry

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/veil-runtime/veil/runtime/inspect"
)

func TestRecorder(t *testing.T) {
	r := NewRecorder()
	for _, d := range []time.Duration{500 * time.Microsecond, 10 * time.Millisecond, 30 * time.Millisecond, time.Minute} {
		r.ObserveRPC("CreateContainer", d, nil)
	}
	r.ObserveRPC("CreateContainer", time.Millisecond, errors.New("refused"))
	r.Stdio(Stdout).Add(10)
	r.Stdio(Stdout).Add(5)
	if r.Stdio("tty") != nil {
		t.Error("a counter for an unknown stream")
	}
	got := r.Snapshot()
	if len(got.AgentRpcs) != 1 {
		t.Fatalf("rpcs %v", got.AgentRpcs)
	}
	rpc := got.AgentRpcs[0]
	cases := []struct {
		name  string
		bound float64
		want  uint64
	}{
		{name: "≤ 1 ms", bound: .001, want: 2},
		{name: "≤ 10 ms (a bound is inclusive)", bound: .01, want: 3},
		{name: "≤ 50 ms", bound: .05, want: 4},
		{name: "≤ 10 s: the minute is only in +Inf", bound: 10, want: 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for i, b := range got.RpcBucketBounds {
				if b == tc.bound {
					if rpc.Buckets[i] != tc.want {
						t.Errorf("bucket le=%v: %d, want %d", b, rpc.Buckets[i], tc.want)
					}
					return
				}
			}
			t.Fatalf("no bound %v", tc.bound)
		})
	}
	if rpc.Count != 5 || rpc.Errors != 1 {
		t.Errorf("count %d errors %d, want 5 1", rpc.Count, rpc.Errors)
	}
	for _, s := range got.Stdio {
		if s.Stream == Stdout && s.Bytes != 15 {
			t.Errorf("stdout %d bytes, want 15", s.Bytes)
		}
	}
}

// TestServe: the monitor's client (runtime/inspect) reads the recorder
// over the owner-only socket and learns the shim's pid from the kernel;
// the socket goes when the server stops.
func TestServe(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "shim.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v (%v), want 0600", st.Mode().Perm(), err)
	}
	r := NewRecorder()
	r.ObserveRPC("Health", time.Millisecond, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, r) }()
	rd := &inspect.Reader{StateDir: dir, ProcRoot: "/proc"}
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ccancel()
	pid, resp, err := rd.ShimTelemetry(cctx, inspect.SandboxInfo{ID: "sb", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if pid != os.Getpid() || len(resp.AgentRpcs) != 1 || resp.AgentRpcs[0].Method != "Health" {
		t.Errorf("pid %d (want %d), requests %v", pid, os.Getpid(), resp.AgentRpcs)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after the server stopped: %v", err)
	}
}
