package task

import (
	"context"

	"github.com/veil-runtime/veil/agent/api"
)

// ContainerAgent is the part of the guest agent the task service talks to:
// the container and process calls, nothing sandbox-level (health, network,
// hotplug, destroy: runtime/sandbox owns those). The methods are
// api.AgentService's, so the generated ttrpc client satisfies it.
type ContainerAgent interface {
	CreateContainer(ctx context.Context, r *api.CreateContainerRequest) (*api.Empty, error)
	StartContainer(ctx context.Context, r *api.ContainerRequest) (*api.StartResponse, error)
	ExecProcess(ctx context.Context, r *api.ExecProcessRequest) (*api.StartResponse, error)
	SignalProcess(ctx context.Context, r *api.SignalRequest) (*api.Empty, error)
	WaitProcess(ctx context.Context, r *api.ProcessRequest) (*api.WaitResponse, error)
	ResizeTTY(ctx context.Context, r *api.ResizeTTYRequest) (*api.Empty, error)
	ListPids(ctx context.Context, r *api.ContainerRequest) (*api.ListPidsResponse, error)
	UpdateContainer(ctx context.Context, r *api.UpdateContainerRequest) (*api.Empty, error)
	Stats(ctx context.Context, r *api.StatsRequest) (*api.StatsResponse, error)
	RemoveProcess(ctx context.Context, r *api.ProcessRequest) (*api.Empty, error)
	RemoveContainer(ctx context.Context, r *api.RemoveContainerRequest) (*api.Empty, error)
	PauseContainer(ctx context.Context, r *api.ContainerRequest) (*api.Empty, error)
	ResumeContainer(ctx context.Context, r *api.ContainerRequest) (*api.Empty, error)
}

// The generated client is a ContainerAgent.
var _ ContainerAgent = api.AgentService(nil)
