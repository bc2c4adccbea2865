package server

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"

	"github.com/veil-runtime/veil/agent/api"
)

// Network configures the guest's network.
type Network interface {
	// Setup applies the pod's interfaces, routes, ARP neighbours and DNS
	// (see api.SetupNetworkRequest), replacing an earlier setup.
	Setup(ctx context.Context, r *api.SetupNetworkRequest) error
}

// SetupNetwork configures the guest's network from the pod's.
func (s *Service) SetupNetwork(ctx context.Context, r *api.SetupNetworkRequest) (*api.Empty, error) {
	if s.network == nil {
		return nil, toStatus(fmt.Errorf("setup network: this agent has no network support: %w", errdefs.ErrNotImplemented))
	}
	return &api.Empty{}, toStatus(s.network.Setup(ctx, r))
}
