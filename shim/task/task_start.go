package task

import (
	"context"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/cleanup"
)

// Start starts a container's init process or an exec.
func (s *service) Start(ctx context.Context, r *taskAPI.StartRequest) (*taskAPI.StartResponse, error) {
	resp, err := s.start(ctx, r)
	if err != nil {
		log.G(ctx).WithError(err).WithFields(log.Fields{"container": r.ID, "exec": r.ExecID}).Error("start")
	}
	return resp, toService(err)
}

func (s *service) start(ctx context.Context, r *taskAPI.StartRequest) (*taskAPI.StartResponse, error) {
	c, p, err := s.getProcess(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	// Of concurrent Starts only one gets past this.
	if err := p.markStarting(); err != nil {
		return nil, err
	}
	sb, err := s.sandbox()
	if err != nil {
		p.markExited(vmDeathExitStatus, time.Now(), nil)
		return nil, err
	}
	if r.ExecID == "" {
		began := time.Now()
		_, err = sb.Agent().StartContainer(ctx, &api.ContainerRequest{ContainerId: c.id})
		err = fromAgent(err, "sandbox %s", sb.ID())
		if err == nil {
			log.G(ctx).WithFields(log.Fields{"container": c.id, "took": time.Since(began)}).Info("container started")
		}
	} else {
		err = s.startExec(ctx, sb, p)
	}
	if err != nil {
		// The agent may have started the process before the call failed
		// (a timeout, a cut connection): make sure it does not run on
		// while the host believes it never did.
		s.killAfterFailedStart(ctx, sb, p)
		p.markExited(vmDeathExitStatus, time.Now(), nil)
		return nil, err
	}
	if err := p.markRunning(); err != nil {
		return nil, err
	}
	pid := p.status().Pid
	if r.ExecID == "" {
		s.send(&eventstypes.TaskStart{ContainerID: c.id, Pid: pid})
	} else {
		s.send(&eventstypes.TaskExecStarted{ContainerID: c.id, ExecID: r.ExecID, Pid: pid})
	}
	go s.waitProcess(sb, p)
	return &taskAPI.StartResponse{Pid: pid}, nil
}

// startExec connects an exec's streams and has the agent run it.
func (s *service) startExec(ctx context.Context, sb PodVM, p *process) error {
	st, stdio, err := openStreams(ctx, s.ctx, sb, sb.Config().Timeouts.AgentRequest.Duration, p.containerID, p.execID, p.stdio)
	if err != nil {
		return err
	}
	st.counts = s.tele
	_, err = sb.Agent().ExecProcess(ctx, &api.ExecProcessRequest{
		ContainerId: p.containerID,
		ExecId:      p.execID,
		Process:     p.spec,
		Stdio:       stdio,
	})
	if err != nil {
		st.abort()
		return fromAgent(err, "sandbox %s", sb.ID())
	}
	st.start(s.ctx)
	p.setStreams(st)
	p.setPid(uint32(sb.VMMPid()))
	return nil
}

// killAfterFailedStart SIGKILLs a process (an init with every process of
// its container) whose start failed on the host side. Errors only mean
// there is nothing to kill, or a dead agent: they are logged.
func (s *service) killAfterFailedStart(ctx context.Context, sb PodVM, p *process) {
	if vmGone(sb) {
		return
	}
	// Not cancelled with the failed request; bounded as every agent
	// request is (timeouts.agent_request).
	cctx, cancel := cleanup.Context(ctx, sb.Config().Timeouts.AgentRequest.Duration)
	defer cancel()
	_, err := sb.Agent().SignalProcess(cctx, &api.SignalRequest{
		ContainerId: p.containerID,
		ExecId:      p.execID,
		Signal:      uint32(unix.SIGKILL),
		All:         p.execID == "",
	})
	if err != nil {
		log.G(ctx).WithError(fromAgent(err, "kill %s after its failed start", p.name())).Debug("nothing killed")
	}
}
