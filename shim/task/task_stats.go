package task

import (
	"context"
	"fmt"

	cgroupstats "github.com/containerd/cgroups/v3/cgroup2/stats"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"

	"github.com/veil-runtime/veil/agent/api"
)

// Stats reports a container's cgroup v2 statistics from the guest, in the
// form `ctr task metrics` and CRI decode (io.containerd.cgroups.v2.Metrics).
func (s *service) Stats(ctx context.Context, r *taskAPI.StatsRequest) (*taskAPI.StatsResponse, error) {
	resp, err := s.stats(ctx, r.ID)
	return resp, toService(err)
}

func (s *service) stats(ctx context.Context, id string) (*taskAPI.StatsResponse, error) {
	if _, err := s.getContainer(id); err != nil {
		return nil, err
	}
	sb, err := s.sandbox()
	if err != nil {
		return nil, err
	}
	st, err := sb.Agent().Stats(ctx, &api.StatsRequest{})
	if err != nil {
		return nil, fromAgent(err, "sandbox %s: stats", sb.ID())
	}
	for _, c := range st.Containers {
		if c.ContainerId != id {
			continue
		}
		any, err := typeurl.MarshalAnyToProto(containerMetrics(c))
		if err != nil {
			return nil, fmt.Errorf("encode stats of %s: %w", id, err)
		}
		return &taskAPI.StatsResponse{Stats: any}, nil
	}
	return nil, fmt.Errorf("stats of container %s: not reported by the guest: %w", id, errdefs.ErrNotFound)
}

// containerMetrics converts the agent's per-container figures to
// containerd's cgroup v2 metrics.
func containerMetrics(c *api.ContainerStats) *cgroupstats.Metrics {
	return &cgroupstats.Metrics{
		Pids: &cgroupstats.PidsStat{Current: c.PidsCurrent},
		CPU: &cgroupstats.CPUStat{
			UsageUsec:  c.CpuUsageUsec,
			UserUsec:   c.CpuUserUsec,
			SystemUsec: c.CpuSystemUsec,
		},
		Memory: &cgroupstats.MemoryStat{
			Usage:      c.MemoryCurrentBytes,
			UsageLimit: c.MemoryLimitBytes,
		},
		MemoryEvents: memoryEvents(c.MemoryEvents),
	}
}

func memoryEvents(e *api.MemoryEvents) *cgroupstats.MemoryEvents {
	if e == nil {
		return nil
	}
	return &cgroupstats.MemoryEvents{Low: e.Low, High: e.High, Max: e.Max, Oom: e.Oom, OomKill: e.OomKill}
}
