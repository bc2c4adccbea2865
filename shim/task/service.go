package task

import (
	"context"
	"fmt"
	"sync"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/shim/telemetry"
)

const (
	// eventQueue is how many events may wait for the publisher.
	eventQueue = 256
	// stopTimeout bounds stopping a sandbox after its last container.
	stopTimeout = 30 * time.Second
)

// Every agent request but WaitProcess is bounded by the sandbox's agent
// client (timeouts.agent_request); the shim adds no deadline of its own.

// Publisher sends task events to containerd (pkg/shim's publisher).
type Publisher interface {
	// Publish forwards one event under topic.
	Publish(ctx context.Context, topic string, event events.Event) error
}

// Shutdowner is the part of the shim's shutdown service (pkg/shutdown)
// the task service uses.
type Shutdowner interface {
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
	shutdown Shutdowner

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
	// deleting counts the Deletes that took their container out of
	// containers and have not answered yet: Shutdown keeps the shim up
	// for them (containerd sends one Shutdown per deleted task, and one
	// may overtake the last container's Delete).
	deleting int
	// paused holds the ids of the containers Pause paused (the agent
	// froze their cgroups; task_pause.go). pauseMu serialises pausing and
	// resuming with changes to it; it is taken before mu, and after
	// lifecycle.
	pauseMu sync.Mutex
	paused  map[string]bool

	// tele is what the shim tells the node's metrics exporter
	// (telemetry.go).
	tele *telemetry.Recorder
}

// NewService builds the task service v3 of one shim, starting sandboxes
// with l, publishing events with pub and cleaning up when sd shuts the
// shim down. The value also registers itself on a ttrpc server
// (RegisterTTRPC), as pkg/shim's plugins do.
func NewService(ctx context.Context, l Launcher, pub Publisher, sd Shutdowner) taskAPI.TTRPCTaskService {
	return newService(ctx, l, pub, sd)
}

// newService builds the task service and starts its event forwarder.
func newService(ctx context.Context, l Launcher, pub Publisher, sd Shutdowner) *service {
	s := &service{
		ctx:        ctx,
		launcher:   l,
		events:     make(chan events.Event, eventQueue),
		shutdown:   sd,
		containers: map[string]*container{},
		creating:   map[string]bool{},
		paused:     map[string]bool{},
		tele:       telemetry.NewRecorder(),
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

func (s *service) forward(pub Publisher) {
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
	// Paused containers go with the VM: nothing to thaw.
	s.mu.Lock()
	clear(s.paused)
	s.mu.Unlock()
	if err := s.stopSandbox(ctx, "the shim shuts down"); err != nil {
		log.G(ctx).WithError(err).Error("shutdown: stop sandbox")
	}
	return nil
}

type waitRequest = api.ProcessRequest

func timestamp(t time.Time) *timestamppb.Timestamp { return protobuf.ToTimestamp(t) }

var empty = &emptypb.Empty{}
