package task

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/statedir"
	"github.com/veil-runtime/veil/shim/bundle"
	"google.golang.org/protobuf/types/known/anypb"
)

// fakeAgent plays the guest agent: it records stream connections and
// calls, and answers WaitProcess when the test says so.
type fakeAgent struct {
	ContainerAgent // unimplemented methods panic

	mu       sync.Mutex
	startErr error
	execErr  error
	waitErr  error
	// removeContainerErr and removeProcessErrs answer RemoveContainer and
	// RemoveProcess (one error per call, then success).
	removeContainerErr error
	removeProcessErrs  []error
	// gates, when set for a method, make calls to it announce themselves
	// on entered and wait until the gate closes.
	gates   map[string]chan struct{}
	entered chan string
	exits   map[string]chan uint32 // process name → exit status
	removed []string
	// removeReqs, signals and removedProcs record the requests.
	removeReqs   []*api.RemoveContainerRequest
	signals      []*api.SignalRequest
	removedProcs []string
	calls        map[string]int
	// signalErr, when set, is SignalProcess's answer.
	signalErr error
	// pausing records PauseContainer and ResumeContainer calls as
	// "pause:ID" and "resume:ID"; pauseErr and resumeErr answer them.
	pausing             []string
	pauseErr, resumeErr error
}

func (a *fakeAgent) PauseContainer(_ context.Context, r *api.ContainerRequest) (*api.Empty, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pausing = append(a.pausing, "pause:"+r.ContainerId)
	return &api.Empty{}, a.pauseErr
}

func (a *fakeAgent) ResumeContainer(_ context.Context, r *api.ContainerRequest) (*api.Empty, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pausing = append(a.pausing, "resume:"+r.ContainerId)
	return &api.Empty{}, a.resumeErr
}

func procName(cid, eid string) string {
	if eid == "" {
		return cid
	}
	return cid + "/" + eid
}

// called records a call and applies the method's gate.
func (a *fakeAgent) called(ctx context.Context, method string) {
	a.mu.Lock()
	if a.calls == nil {
		a.calls = map[string]int{}
	}
	a.calls[method]++
	gate := a.gates[method]
	a.mu.Unlock()
	if gate != nil {
		a.entered <- method
		<-gate
	}
}

func (a *fakeAgent) gate(method string) chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.gates == nil {
		a.gates = map[string]chan struct{}{}
	}
	if a.entered == nil {
		a.entered = make(chan string, 8)
	}
	g := make(chan struct{})
	a.gates[method] = g
	return g
}

func (a *fakeAgent) count(method string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[method]
}

func (a *fakeAgent) exitChan(name string) chan uint32 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.exits[name] == nil {
		a.exits[name] = make(chan uint32, 1)
	}
	return a.exits[name]
}

func (a *fakeAgent) CreateContainer(ctx context.Context, r *api.CreateContainerRequest) (*api.Empty, error) {
	a.called(ctx, "CreateContainer")
	return &api.Empty{}, nil
}

func (a *fakeAgent) StartContainer(ctx context.Context, r *api.ContainerRequest) (*api.StartResponse, error) {
	a.called(ctx, "StartContainer")
	return &api.StartResponse{Pid: 1}, a.startErr
}

func (a *fakeAgent) ExecProcess(ctx context.Context, r *api.ExecProcessRequest) (*api.StartResponse, error) {
	a.called(ctx, "ExecProcess")
	if a.execErr != nil {
		return nil, a.execErr
	}
	return &api.StartResponse{Pid: 2}, nil
}

func (a *fakeAgent) WaitProcess(ctx context.Context, r *api.ProcessRequest) (*api.WaitResponse, error) {
	a.called(ctx, "WaitProcess")
	if a.waitErr != nil {
		return nil, a.waitErr
	}
	select {
	case st := <-a.exitChan(procName(r.ContainerId, r.ExecId)):
		return &api.WaitResponse{ExitStatus: st, ExitedAtUnixNano: time.Now().UnixNano()}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (a *fakeAgent) SignalProcess(ctx context.Context, r *api.SignalRequest) (*api.Empty, error) {
	a.called(ctx, "SignalProcess")
	a.mu.Lock()
	a.signals = append(a.signals, r)
	signalErr := a.signalErr
	a.mu.Unlock()
	if signalErr != nil {
		return nil, signalErr
	}
	if r.Signal == uint32(syscall.SIGKILL) && r.ExecId != "" {
		// The killed exec exits; a pending WaitProcess answers.
		select {
		case a.exitChan(procName(r.ContainerId, r.ExecId)) <- 137:
		default:
		}
	}
	return &api.Empty{}, nil
}

func (a *fakeAgent) RemoveContainer(ctx context.Context, r *api.RemoveContainerRequest) (*api.Empty, error) {
	a.called(ctx, "RemoveContainer")
	a.mu.Lock()
	defer a.mu.Unlock()
	a.removeReqs = append(a.removeReqs, r)
	if a.removeContainerErr != nil {
		return nil, a.removeContainerErr
	}
	a.removed = append(a.removed, r.ContainerId)
	return &api.Empty{}, nil
}

func (a *fakeAgent) RemoveProcess(ctx context.Context, r *api.ProcessRequest) (*api.Empty, error) {
	a.called(ctx, "RemoveProcess")
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.removeProcessErrs) > 0 {
		err := a.removeProcessErrs[0]
		a.removeProcessErrs = a.removeProcessErrs[1:]
		if err != nil {
			return nil, err
		}
	}
	a.removedProcs = append(a.removedProcs, procName(r.ContainerId, r.ExecId))
	return &api.Empty{}, nil
}

// fakePodVM hands out socketpairs for streams; the guest ends are kept
// for the test.
type fakePodVM struct {
	id      string
	share   *fakeShare
	agent   *fakeAgent
	done    chan struct{}
	dieOnce sync.Once

	mu      sync.Mutex
	guest   map[api.StreamHeader]net.Conn
	stopped bool
	stopErr error
	// stopGate, when set, holds Stop: it sends once when Stop begins and
	// returns after a second exchange.
	stopGate chan struct{}
	// deafDials makes DialStream wait until its context ends, as a deaf
	// vsock device does; undeadlined counts dials without a deadline.
	deafDials   bool
	undeadlined int
	// vmKills counts KillVM calls.
	vmKills int
	// fits records FitResources calls; fitErr is their answer.
	fits   []*specs.LinuxResources
	fitErr error
}

func (s *fakePodVM) Config() *config.Config { return config.Default() }
func (s *fakePodVM) ID() string             { return s.id }
func (s *fakePodVM) Share() ContainerShare  { return s.share }
func (s *fakePodVM) Agent() ContainerAgent  { return s.agent }
func (s *fakePodVM) Done() <-chan struct{}  { return s.done }
func (s *fakePodVM) VMMPid() int            { return 4242 }
func (s *fakePodVM) die()                   { s.dieOnce.Do(func() { close(s.done) }) }

func (s *fakePodVM) FitResources(_ context.Context, res *specs.LinuxResources) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fits = append(s.fits, res)
	return s.fitErr
}

// KillVM ends the fake VM (see vmKiller) and counts the calls.
func (s *fakePodVM) KillVM(ctx context.Context) error {
	s.mu.Lock()
	s.vmKills++
	s.mu.Unlock()
	s.die()
	return nil
}

func (s *fakePodVM) Stop(ctx context.Context) error {
	s.mu.Lock()
	s.stopped = true
	err := s.stopErr
	gate := s.stopGate
	s.mu.Unlock()
	if gate != nil {
		gate <- struct{}{} // Stop has begun
		<-gate             // the test lets it finish
	}
	s.die()
	return err
}

func (s *fakePodVM) DialStream(ctx context.Context, h api.StreamHeader) (net.Conn, error) {
	s.mu.Lock()
	if _, ok := ctx.Deadline(); !ok {
		s.undeadlined++
	}
	deaf := s.deafDials
	s.mu.Unlock()
	if deaf {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	conn := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "stream")
		defer func() { _ = f.Close() }()
		c, err := net.FileConn(f)
		if err != nil {
			panic(err)
		}
		return c
	}
	host, guest := conn(fds[0]), conn(fds[1])
	s.mu.Lock()
	s.guest[h] = guest
	s.mu.Unlock()
	return host, nil
}

func (s *fakePodVM) guestConn(t *testing.T, cid string, st api.Stream) net.Conn {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.guest[api.StreamHeader{ContainerID: cid, Stream: st}]
	if !ok {
		t.Fatalf("no %s stream for %s", st, cid)
	}
	return c
}

type fakeLauncher struct {
	sb *fakePodVM
	// sbOverride, when set, is the sandbox Start returns (wrapping sb).
	sbOverride PodVM

	mu         sync.Mutex
	cleanupErr error
	cleaned    []string
}

func (l *fakeLauncher) Start(ctx context.Context, id string, opts SandboxOptions) (PodVM, error) {
	l.sb.id = id
	if l.sbOverride != nil {
		return l.sbOverride, nil
	}
	return l.sb, nil
}
func (l *fakeLauncher) Cleanup(_ context.Context, id string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cleaned = append(l.cleaned, id)
	return l.cleanupErr
}
func (l *fakeLauncher) StateDir() string { return "" }

// fakeShare records which containers are in the share.
type fakeShare struct {
	mu    sync.Mutex
	added map[string]statedir.ContainerFS
}

func (m *fakeShare) AddContainer(_ context.Context, id string, fs statedir.ContainerFS) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.added[id]; ok {
		return nil, fmt.Errorf("container %s in the share already", id)
	}
	m.added[id] = fs
	return nil, nil
}

func (m *fakeShare) RemoveContainer(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.added, id)
	return nil
}

func (m *fakeShare) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.added)
}

func (m *fakeShare) has(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.added[id]
	return ok
}

type recordingPublisher struct {
	mu     sync.Mutex
	events []events.Event
	got    chan struct{}
}

func (p *recordingPublisher) Publish(ctx context.Context, topic string, ev events.Event) error {
	p.mu.Lock()
	p.events = append(p.events, ev)
	p.mu.Unlock()
	select {
	case p.got <- struct{}{}:
	default:
	}
	return nil
}

// waitFor waits until an event matching f was published.
func (p *recordingPublisher) waitFor(t *testing.T, what string, f func(events.Event) bool) events.Event {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		p.mu.Lock()
		for _, e := range p.events {
			if f(e) {
				p.mu.Unlock()
				return e
			}
		}
		p.mu.Unlock()
		select {
		case <-p.got:
		case <-deadline:
			t.Fatalf("no %s event; got %v", what, p.events)
		}
	}
}

type fakeShutdown struct {
	done  chan struct{}
	calls atomic.Int32
}

func (f *fakeShutdown) Shutdown()                                    { f.calls.Add(1) }
func (f *fakeShutdown) RegisterCallback(func(context.Context) error) {}
func (f *fakeShutdown) Done() <-chan struct{}                        { return f.done }

type fixture struct {
	svc    *service
	l      *fakeLauncher
	sb     *fakePodVM
	agent  *fakeAgent
	pub    *recordingPublisher
	share  *fakeShare
	sd     *fakeShutdown
	bundle string
	ctx    context.Context
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx, cancel := context.WithCancel(namespaces.WithNamespace(context.Background(), "test"))
	t.Cleanup(cancel)
	agent := &fakeAgent{exits: map[string]chan uint32{}}
	share := &fakeShare{added: map[string]statedir.ContainerFS{}}
	sb := &fakePodVM{share: share, agent: agent, done: make(chan struct{}), guest: map[api.StreamHeader]net.Conn{}}
	pub := &recordingPublisher{got: make(chan struct{}, 1)}
	sd := &fakeShutdown{done: make(chan struct{})}
	t.Cleanup(func() { close(sd.done) })
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, bundle.SpecFile), []byte(`{"ociVersion":"1.0.2","hostname":"h"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	l := &fakeLauncher{sb: sb}
	svc := newService(ctx, l, pub, sd)
	return &fixture{svc: svc, l: l, sb: sb, agent: agent, pub: pub, share: share, sd: sd, bundle: dir, ctx: ctx}
}

// stdoutFifo makes a FIFO and opens its read end, as containerd's client does.
func stdoutFifo(t *testing.T) (string, *os.File) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stdout")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return path, r
}

func (f *fixture) createAndStart(t *testing.T, id, stdout string) {
	t.Helper()
	if _, err := f.svc.Create(f.ctx, &taskAPI.CreateTaskRequest{ID: id, Bundle: f.bundle, Stdout: stdout}); err != nil {
		t.Fatalf("create: %v", err)
	}
	if _, err := f.svc.Start(f.ctx, &taskAPI.StartRequest{ID: id}); err != nil {
		t.Fatalf("start: %v", err)
	}
}

func isExit(id string) func(events.Event) bool {
	return func(e events.Event) bool {
		x, ok := e.(*eventstypes.TaskExit)
		return ok && x.ContainerID == id
	}
}

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
	writeFile(t, f.bundle, bundle.SpecFile, `{"ociVersion":"1.0.2","annotations":{"io.containerd.veil.v2.group":"pod"}}`)
}

func (f *fixture) execRequest(id, execID string) *taskAPI.ExecProcessRequest {
	return &taskAPI.ExecProcessRequest{ID: id, ExecID: execID, Spec: &anypb.Any{Value: []byte(`{"args":["true"],"cwd":"/"}`)}}
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

func writeFile(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// agentPodVM is the fake sandbox with another agent.
type agentPodVM struct {
	*fakePodVM
	agent ContainerAgent
}
