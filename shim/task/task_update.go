package task

import (
	"context"
	"encoding/json"
	"fmt"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/veil-runtime/veil/agent/api"
)

// Update applies new resources to a container's cgroup in the guest. The
// sandbox first fits the VM to them (PodVM.FitResources: it grows a VM
// that can hotplug; one that cannot keeps its size, and the container's
// limits are bounded by the VM's).
func (s *service) Update(ctx context.Context, r *taskAPI.UpdateTaskRequest) (*emptypb.Empty, error) {
	err := s.update(ctx, r)
	if err != nil {
		log.G(ctx).WithError(err).WithField("container", r.ID).Error("update")
	}
	return empty, toService(err)
}

func (s *service) update(ctx context.Context, r *taskAPI.UpdateTaskRequest) error {
	if _, err := s.getContainer(r.ID); err != nil {
		return err
	}
	if r.Resources == nil {
		return fmt.Errorf("update container %s: no resources: %w", r.ID, errdefs.ErrInvalidArgument)
	}
	v, err := typeurl.UnmarshalAny(r.Resources)
	if err != nil {
		return fmt.Errorf("update container %s: decode resources: %w: %w", r.ID, err, errdefs.ErrInvalidArgument)
	}
	res, ok := v.(*specs.LinuxResources)
	if !ok {
		return fmt.Errorf("update container %s: resources are %T, not Linux resources: %w", r.ID, v, errdefs.ErrInvalidArgument)
	}
	sb, err := s.sandbox()
	if err != nil {
		return err
	}
	if err := sb.FitResources(ctx, res); err != nil {
		return fmt.Errorf("update container %s: %w", r.ID, err)
	}
	b, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("update container %s: encode resources: %w", r.ID, err)
	}
	if _, err := sb.Agent().UpdateContainer(ctx, &api.UpdateContainerRequest{ContainerId: r.ID, Resources: b}); err != nil {
		return fromAgent(err, "sandbox %s: update container %s", sb.ID(), r.ID)
	}
	return nil
}
