package container

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/veil-runtime/veil/agent/stream"
)

// fakeStreams records Discard calls; Take either fails at once or, with
// block set, reports the claim on taking and hands out a pipe end once
// release is closed.
type fakeStreams struct {
	block   bool
	taking  chan stream.Key
	release chan struct{}

	mu        sync.Mutex
	discarded []string // "container/exec"
}

func newFakeStreams(block bool) *fakeStreams {
	return &fakeStreams{block: block, taking: make(chan stream.Key, 3), release: make(chan struct{})}
}

func (f *fakeStreams) Take(ctx context.Context, key stream.Key) (net.Conn, error) {
	if !f.block {
		return nil, errors.New("no stream in this test")
	}
	f.taking <- key
	select {
	case <-f.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	a, b := net.Pipe()
	go func() { _ = a.Close() }()
	return b, nil
}

func (f *fakeStreams) Discard(containerID, execID string, all bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.discarded = append(f.discarded, containerID+"/"+execID)
}

func (f *fakeStreams) discards() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.discarded...)
}

// fakeProc is a process record in the given state; it has no libcontainer
// process behind it.
func fakeProc(started, exited bool) *process {
	p := newProcess("fake", nil, nil)
	if started {
		close(p.started)
	}
	if exited {
		close(p.exited)
		close(p.done)
	}
	return p
}

// addContainer registers a created container whose init is in the given
// state, without libcontainer behind it.
func addContainer(m *Manager, id string, initStarted, initExited bool, execs map[string]*process) *container {
	if execs == nil {
		execs = map[string]*process{}
	}
	c := &container{id: id, init: fakeProc(initStarted, initExited), execs: execs}
	m.containers[id] = c
	return c
}

func specJSON(t *testing.T) []byte {
	t.Helper()
	s := specconv.Example()
	s.Process.Args = []string{"true"}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func procJSON(t *testing.T) []byte {
	t.Helper()
	b, err := json.Marshal(specs.Process{Args: []string{"true"}, Cwd: "/"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestCreateFailureDiscardsStreams checks that a failed Create closes the
// init's pending connections, except those of another in-flight Create.
func TestCreateFailureDiscardsStreams(t *testing.T) {
	shared := t.TempDir()
	rootfs := filepath.Join(shared, "c1", "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	good := specJSON(t)
	cases := []struct {
		name     string
		id       string
		rootfs   string
		spec     []byte
		sio      Stdio
		existing *container // registered under id before Create
		wantErr  error
		want     []string
	}{
		{name: "bad id", id: "a/b", rootfs: rootfs, spec: good, wantErr: errdefs.ErrInvalidArgument, want: []string{"a/b/"}},
		{name: "rootfs outside the share", id: "c1", rootfs: t.TempDir(), spec: good, wantErr: errdefs.ErrInvalidArgument, want: []string{"c1/"}},
		{name: "terminal with stderr", id: "c1", rootfs: rootfs, spec: good, sio: Stdio{Terminal: true, Stderr: true}, wantErr: errdefs.ErrInvalidArgument, want: []string{"c1/"}},
		{name: "bad spec", id: "c1", rootfs: rootfs, spec: []byte("{"), wantErr: errdefs.ErrInvalidArgument, want: []string{"c1/"}},
		{name: "id of a created container", id: "c1", rootfs: rootfs, spec: good, existing: &container{id: "c1"}, wantErr: errdefs.ErrAlreadyExists, want: []string{"c1/"}},
		{name: "id of an in-flight create keeps its streams", id: "c1", rootfs: rootfs, spec: good, existing: &container{id: "c1", creating: true}, wantErr: errdefs.ErrAlreadyExists},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFakeStreams(false)
			m := NewManager(Config{StateRoot: t.TempDir(), SharedDir: shared}, fs)
			if tc.existing != nil {
				m.containers[tc.id] = tc.existing
			}
			err := m.Create(context.Background(), tc.id, tc.spec, CreateOptions{Rootfs: tc.rootfs, Stdio: tc.sio})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Create = %v, want %v", err, tc.wantErr)
			}
			if got := fs.discards(); !equal(got, tc.want) {
				t.Fatalf("discarded %q, want %q", got, tc.want)
			}
		})
	}
}

// TestExecFailureDiscardsStreams checks that a failed Exec closes the
// exec's pending connections, except those of another in-flight Exec or
// of the init.
func TestExecFailureDiscardsStreams(t *testing.T) {
	cases := []struct {
		name    string
		execID  string
		proc    []byte
		sio     Stdio
		setup   func(m *Manager)
		wantErr error
		want    []string
	}{
		{name: "empty exec id leaves the init's streams", proc: procJSON(t), setup: func(m *Manager) { addContainer(m, "c1", true, false, nil) }, wantErr: errdefs.ErrInvalidArgument},
		{name: "terminal with stderr", execID: "e1", proc: procJSON(t), sio: Stdio{Terminal: true, Stderr: true}, setup: func(m *Manager) { addContainer(m, "c1", true, false, nil) }, wantErr: errdefs.ErrInvalidArgument, want: []string{"c1/e1"}},
		{name: "bad process json", execID: "e1", proc: []byte("{"), setup: func(m *Manager) { addContainer(m, "c1", true, false, nil) }, wantErr: errdefs.ErrInvalidArgument, want: []string{"c1/e1"}},
		{name: "unknown container", execID: "e1", proc: procJSON(t), setup: func(*Manager) {}, wantErr: errdefs.ErrNotFound, want: []string{"c1/e1"}},
		{name: "container not started", execID: "e1", proc: procJSON(t), setup: func(m *Manager) { addContainer(m, "c1", false, false, nil) }, wantErr: errdefs.ErrFailedPrecondition, want: []string{"c1/e1"}},
		{name: "container exited", execID: "e1", proc: procJSON(t), setup: func(m *Manager) { addContainer(m, "c1", true, true, nil) }, wantErr: errdefs.ErrFailedPrecondition, want: []string{"c1/e1"}},
		{name: "exec id still running", execID: "e1", proc: procJSON(t), setup: func(m *Manager) {
			addContainer(m, "c1", true, false, map[string]*process{"e1": fakeProc(true, false)})
		}, wantErr: errdefs.ErrAlreadyExists, want: []string{"c1/e1"}},
		{name: "exec id of an in-flight exec keeps its streams", execID: "e1", proc: procJSON(t), setup: func(m *Manager) {
			addContainer(m, "c1", true, false, map[string]*process{"e1": nil})
		}, wantErr: errdefs.ErrAlreadyExists},
		{name: "stream never arrives", execID: "e1", proc: procJSON(t), sio: Stdio{Stdout: true}, setup: func(m *Manager) { addContainer(m, "c1", true, false, nil) }, want: []string{"c1/e1", "c1/e1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFakeStreams(false)
			m := NewManager(Config{StateRoot: t.TempDir(), SharedDir: t.TempDir()}, fs)
			tc.setup(m)
			_, err := m.Exec(context.Background(), "c1", tc.execID, tc.proc, tc.sio)
			if err == nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Exec = %v, want %v", err, tc.wantErr)
			}
			if got := fs.discards(); !equal(got, tc.want) {
				t.Fatalf("discarded %q, want %q", got, tc.want)
			}
			if c, ok := m.containers["c1"]; ok && tc.wantErr == nil {
				if _, reserved := c.execs[tc.execID]; reserved {
					t.Fatal("the failed exec kept its reservation")
				}
			}
		})
	}
}

// TestExecRechecksAfterStreams checks that an exec whose container was
// removed, or whose init exited, while it waited for its streams runs
// nothing: the process would escape the removal's kill.
func TestExecRechecksAfterStreams(t *testing.T) {
	cases := []struct {
		name   string
		change func(c *container)
	}{
		{name: "container removed", change: func(c *container) { c.removed = true }},
		{name: "init exited", change: func(c *container) { close(c.init.exited) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFakeStreams(true)
			m := NewManager(Config{StateRoot: t.TempDir(), SharedDir: t.TempDir()}, fs)
			// No libcontainer container: reaching Run would panic.
			c := addContainer(m, "c1", true, false, nil)
			errc := make(chan error, 1)
			go func() {
				_, err := m.Exec(context.Background(), "c1", "e1", procJSON(t), Stdio{Stdout: true})
				errc <- err
			}()
			<-fs.taking
			c.mu.Lock()
			tc.change(c)
			c.mu.Unlock()
			close(fs.release)
			if err := <-errc; !errdefs.IsFailedPrecondition(err) {
				t.Fatalf("Exec = %v, want FailedPrecondition", err)
			}
			c.mu.Lock()
			_, reserved := c.execs["e1"]
			c.mu.Unlock()
			if reserved {
				t.Fatal("the refused exec kept its reservation")
			}
			if got := fs.discards(); !equal(got, []string{"c1/e1"}) {
				t.Fatalf("discarded %q, want the exec's streams", got)
			}
		})
	}
}

func TestRemoveProcess(t *testing.T) {
	cases := []struct {
		name     string
		id       string
		execID   string
		execs    map[string]*process
		wantErr  error
		wantGone bool
	}{
		{name: "exited exec is forgotten", id: "c1", execID: "e1", execs: map[string]*process{"e1": fakeProc(true, true)}, wantGone: true},
		{name: "running exec", id: "c1", execID: "e1", execs: map[string]*process{"e1": fakeProc(true, false)}, wantErr: errdefs.ErrFailedPrecondition},
		{name: "exec being started", id: "c1", execID: "e1", execs: map[string]*process{"e1": nil}, wantErr: errdefs.ErrFailedPrecondition},
		{name: "unknown exec", id: "c1", execID: "e2", execs: map[string]*process{"e1": fakeProc(true, true)}, wantErr: errdefs.ErrNotFound},
		{name: "unknown container", id: "c2", execID: "e1", wantErr: errdefs.ErrNotFound},
		{name: "init process", id: "c1", execID: "", wantErr: errdefs.ErrInvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFakeStreams(false)
			m := NewManager(Config{StateRoot: t.TempDir(), SharedDir: t.TempDir()}, fs)
			c := addContainer(m, "c1", true, false, tc.execs)
			err := m.RemoveProcess(context.Background(), tc.id, tc.execID)
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("RemoveProcess = %v, want %v", err, tc.wantErr)
			}
			_, had := tc.execs["e1"]
			if _, present := c.execs["e1"]; present != (had && !tc.wantGone) {
				t.Fatalf("record of e1 present = %v after RemoveProcess", present)
			}
			if tc.wantGone {
				if _, err := m.Wait(context.Background(), tc.id, tc.execID); !errdefs.IsNotFound(err) {
					t.Fatalf("Wait after removal = %v, want NotFound", err)
				}
			}
		})
	}
}
