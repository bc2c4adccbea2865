package monitor

import (
	"context"
	"fmt"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/cgroup"
	"github.com/veil-runtime/veil/runtime/inspect"
	"github.com/veil-runtime/veil/runtime/statedir"
	shimapi "github.com/veil-runtime/veil/shim/api"
)

// Source is where the collector reads sandboxes: runtime/inspect on a
// node (InspectSource), a fake in tests.
type Source interface {
	// List reads every sandbox under state_dir.
	List() ([]inspect.SandboxInfo, error)
	// Usage reads a host process's resource use.
	Usage(pid int) (inspect.ProcUsage, error)
	// CgroupStats reads the sandbox cgroup's usage.
	CgroupStats(sb inspect.SandboxInfo) (cgroup.Stats, error)
	// GuestStats asks the sandbox's agent for the guest's figures; it
	// must give up when ctx ends.
	GuestStats(ctx context.Context, sb inspect.SandboxInfo) (*api.StatsResponse, error)
	// ShimTelemetry asks the sandbox's shim for its figures and returns
	// the shim's pid with them; it must give up when ctx ends.
	ShimTelemetry(ctx context.Context, sb inspect.SandboxInfo) (int, *shimapi.GetResponse, error)
	// Starts returns the start journal's records since the last call.
	Starts() ([]statedir.StartRecord, error)
}

// InspectSource reads sandboxes with runtime/inspect, dialling each
// agent afresh per scrape (Dial: inspect.DialAgent on a node), and
// follows state_dir's start journal (Journal).
type InspectSource struct {
	*inspect.Reader
	Dial    inspect.DialFunc
	Journal *statedir.StartsReader
}

// Starts reads the journal's new records.
func (s InspectSource) Starts() ([]statedir.StartRecord, error) {
	recs, err := s.Journal.Read()
	if err != nil {
		return recs, fmt.Errorf("follow the start journal: %w", err)
	}
	return recs, nil
}

// GuestStats dials sb's agent, asks for Stats and closes the connection.
func (s InspectSource) GuestStats(ctx context.Context, sb inspect.SandboxInfo) (*api.StatsResponse, error) {
	agent, err := s.Dial(ctx, sb.Dir)
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: agent: %w", sb.ID, err)
	}
	defer func() { _ = agent.Close() }()
	st, err := agent.Stats(ctx, &api.StatsRequest{})
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: guest stats: %w", sb.ID, err)
	}
	return st, nil
}
