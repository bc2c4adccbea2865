package server

import (
	"context"

	"github.com/veil-runtime/veil/agent/api"
)

// UpdateContainer applies new cgroup resources to a container.
func (s *Service) UpdateContainer(ctx context.Context, r *api.UpdateContainerRequest) (*api.Empty, error) {
	return &api.Empty{}, toStatus(s.containers.Update(ctx, r.ContainerId, r.Resources))
}
