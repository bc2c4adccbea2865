package shim

import (
	"context"
	"fmt"
	"sync"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
)

const (
	// eventQueue is how many events may wait for the publisher.
	eventQueue = 256
	// stopTimeout bounds stopping a sandbox after its last container.
	stopTimeout = 30 * time.Second
)

// Every agent request but WaitProcess is bounded by the sandbox's agent
// client (timeouts.agent_request); the shim adds no deadline of its own.

// publisher sends task events to containerd.
type publisher interface {
	// Publish forwards one event under topic.
	Publish(ctx context.Context, topic string, event events.Event) error
}

// shutdowner is the part of the shim's shutdown service the task service
// uses.
type shutdowner interface {
	// Shutdown makes the shim exit.
	Shutdown()
	// RegisterCallback runs f when the shim shuts down.
	RegisterCallback(f func(context.Context) error)
	// Done is closed once the shutdown callbacks ran.
	Done() <-chan struct{}
}

// service is the task service of one shim: one sandbox, any number of
// containers in it.
type service struct {
	// ctx lives as long as the shim; it carries the namespace and logger.
	ctx      context.Context
	launcher Launcher
	events   chan events.Event
	shutdown shutdowner

	// lifecycle serialises Create and Delete (sandbox start and stop).
	lifecycle sync.Mutex

	mu sync.Mutex
	sb PodVM
	// sbConfigPath is the runtime option ConfigPath sb was started with:
	// its state_dir is where Cleanup finds the sandbox.
	sbConfigPath string
	// sbStopping is closed when the shim stops sb on purpose, so that
	// watchVM does not take the stop for a crash.
	sbStopping chan struct{}
	containers map[string]*container
	// creating holds the ids of Creates past their serialised half; the
	// sandbox stays up for them.
	creating map[string]bool
	// paused holds the ids of the containers Pause paused: the VM is
	// frozen while it is not empty (task_pause.go). pauseMu serialises
	// freezing and thawing the VM with changes to it; it is taken before
	// mu, and after lifecycle.
	pauseMu sync.Mutex
	paused  map[string]bool
}

// newService builds the task service and starts its event forwarder.
func newService(ctx context.Context, l Launcher, pub publisher, sd shutdowner) *service {
	s := &service{
		ctx:        ctx,
		launcher:   l,
		events:     make(chan events.Event, eventQueue),
		shutdown:   sd,
		containers: map[string]*container{},
		creating:   map[string]bool{},
		paused:     map[string]bool{},
	}
	go s.forward(pub)
	sd.RegisterCallback(s.cleanupAll)
	return s
}

// RegisterTTRPC registers the task service v3.
func (s *service) RegisterTTRPC(server *ttrpc.Server) error {
	taskAPI.RegisterTTRPCTaskService(server, s)
	return nil
}

// send queues an event; events are published in the order sent.
func (s *service) send(ev events.Event) {
	select {
	case s.events <- ev:
	case <-s.shutdown.Done():
		log.G(s.ctx).WithField("topic", runtime.GetTopic(ev)).Warn("shim shut down; event dropped")
	}
}

func (s *service) forward(pub publisher) {
	publish := func(ev events.Event) {
		if err := pub.Publish(s.ctx, runtime.GetTopic(ev), ev); err != nil {
			log.G(s.ctx).WithError(err).WithField("topic", runtime.GetTopic(ev)).Error("publish event")
		}
	}
	for {
		select {
		case ev := <-s.events:
			publish(ev)
		case <-s.shutdown.Done():
			for {
				select {
				case ev := <-s.events:
					publish(ev)
				default:
					if c, ok := pub.(interface{ Close() error }); ok {
						_ = c.Close()
					}
					return
				}
			}
		}
	}
}

// getContainer finds a container by id.
func (s *service) getContainer(id string) (*container, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.containers[id]
	if !ok {
		return nil, fmt.Errorf("container %q: %w", id, errdefs.ErrNotFound)
	}
	return c, nil
}

// getProcess finds a container's init (empty execID) or exec.
func (s *service) getProcess(id, execID string) (*container, *process, error) {
	c, err := s.getContainer(id)
	if err != nil {
		return nil, nil, err
	}
	p, err := c.process(execID)
	if err != nil {
		return nil, nil, err
	}
	return c, p, nil
}

// sandbox returns the running sandbox for a call to its agent, or an
// error when there is none, its VM died, or it is paused (a frozen guest
// would not answer; resume it, or SIGKILL, first).
func (s *service) sandbox() (PodVM, error) {
	sb, err := s.vm()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	paused := len(s.paused)
	s.mu.Unlock()
	if paused > 0 {
		return nil, fmt.Errorf("sandbox %s is paused (%d of its tasks): resume it first: %w", sb.ID(), paused, errdefs.ErrFailedPrecondition)
	}
	return sb, nil
}

// vm returns the sandbox whether or not it is paused, or an error when
// there is none or its VM died.
func (s *service) vm() (PodVM, error) {
	s.mu.Lock()
	sb := s.sb
	s.mu.Unlock()
	if sb == nil {
		return nil, fmt.Errorf("no sandbox: %w", errdefs.ErrFailedPrecondition)
	}
	select {
	case <-sb.Done():
		return nil, fmt.Errorf("sandbox %s: VM is not running: %w", sb.ID(), errdefs.ErrUnavailable)
	default:
		return sb, nil
	}
}

// watchVM handles the death of the sandbox's VM: processes never started
// are marked exited; running ones are finished by their waiters, whose
// agent calls the VM's death cancels.
func (s *service) watchVM(sb PodVM, stopping <-chan struct{}) {
	select {
	case <-sb.Done():
	case <-stopping:
		return
	}
	select {
	case <-stopping:
		return
	default:
	}
	log.G(s.ctx).WithField("sandbox", sb.ID()).Error("sandbox VM died; every process of it exits with status 255")
	s.mu.Lock()
	var cs []*container
	for _, c := range s.containers {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	now := time.Now()
	for _, c := range cs {
		for _, p := range c.all() {
			if p.status().State == stateCreated {
				p.markExited(vmDeathExitStatus, now, nil)
				if st := p.getStreams(); st != nil {
					st.abort()
				}
			}
		}
	}
}

// waitProcess waits for a running process to exit, for its output to be
// copied to the host, and then records the exit and publishes TaskExit.
// The VM's death ends the wait with vmDeathExitStatus.
func (s *service) waitProcess(sb PodVM, p *process) {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	go func() {
		select {
		case <-sb.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	logger := log.G(s.ctx).WithField("process", p.name())
	status, exitedAt := uint32(vmDeathExitStatus), time.Now()
	resp, err := sb.Agent().WaitProcess(ctx, &waitRequest{ContainerId: p.containerID, ExecId: p.execID})
	if err != nil {
		logger.WithError(err).Warn("wait for process failed; reporting exit status 255")
	} else {
		status = resp.ExitStatus
		if resp.ExitedAtUnixNano > 0 {
			exitedAt = time.Unix(0, resp.ExitedAtUnixNano)
		}
		if resp.OomKilled {
			// Before TaskExit, so that CRI reports the exit as OOMKilled.
			logger.Info("the container's cgroup saw an OOM kill")
			s.send(&eventstypes.TaskOOM{ContainerID: p.containerID})
		}
	}
	if st := p.getStreams(); st != nil {
		abort := ctx.Done()
		if err != nil {
			st.abort()
		}
		st.waitOutput(abort)
	}
	// TaskExit is queued before Wait returns or Delete proceeds, so it
	// precedes TaskDelete.
	p.markExited(status, exitedAt, func(ps processStatus) {
		logger.WithField("exit_status", status).Debug("process exited")
		s.send(&eventstypes.TaskExit{
			ContainerID: p.containerID,
			ID:          processEventID(p),
			Pid:         ps.Pid,
			ExitStatus:  ps.ExitStatus,
			ExitedAt:    timestamp(ps.ExitedAt),
		})
	})
}

// processEventID is the id containerd expects in process events: the exec
// id, or the container id for init.
func processEventID(p *process) string {
	if p.execID == "" {
		return p.containerID
	}
	return p.execID
}

// cleanupAll runs at shim shutdown: it removes what is left.
func (s *service) cleanupAll(ctx context.Context) error {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	s.mu.Lock()
	cs := s.containers
	s.containers = map[string]*container{}
	s.mu.Unlock()
	for _, c := range cs {
		for _, p := range c.all() {
			if st := p.getStreams(); st != nil {
				st.abort()
			}
		}
		if err := removeFromShare(ctx, c.share, c.id); err != nil {
			log.G(ctx).WithError(err).Warn("shutdown: remove container from the share")
		}
	}
	if err := s.thaw(ctx, "the shim shuts down"); err != nil {
		log.G(ctx).WithError(err).Warn("shutdown: resume the paused sandbox; stopping it anyway")
	}
	if err := s.stopSandbox(ctx, "the shim shuts down"); err != nil {
		log.G(ctx).WithError(err).Error("shutdown: stop sandbox")
	}
	return nil
}
