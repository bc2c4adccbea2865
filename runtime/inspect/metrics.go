package inspect

import (
	"context"
	"fmt"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/hypervisor"
)

// HelperUsage is one host process of a sandbox with its resource use.
type HelperUsage struct {
	Helper
	Usage *ProcUsage `json:"usage,omitempty"`
	Error string     `json:"error,omitempty"`
}

// Metrics is a sandbox's resource use as the host, the guest and the VMM
// see it. A part that could not be read has its *Error set instead.
type Metrics struct {
	ID         string        `json:"id"`
	Hypervisor string        `json:"hypervisor"`
	Host       []HelperUsage `json:"host"`
	// Guest is the agent's Stats answer.
	Guest      *api.StatsResponse `json:"guest,omitempty"`
	GuestError string             `json:"guest_error,omitempty"`
	// Counters are the VMM's device counters (device → name → value).
	Counters      map[string]map[string]int64 `json:"counters,omitempty"`
	CountersError string                      `json:"counters_error,omitempty"`
}

// Metrics gathers the host processes' use from /proc, the guest's through
// the agent (dial) and the VMM's counters when its driver reports any.
// Only a missing sandbox is an error.
func (r *Reader) Metrics(ctx context.Context, id string, dial DialFunc) (Metrics, error) {
	sb, err := r.Get(id)
	if err != nil {
		return Metrics{}, err
	}
	m := Metrics{ID: id, Hypervisor: sb.Hypervisor}
	for _, h := range sb.Helpers {
		hu := HelperUsage{Helper: h}
		if !h.Alive {
			hu.Error = "not running"
		} else if u, err := r.Usage(h.Pid); err != nil {
			hu.Error = err.Error()
		} else {
			hu.Usage = &u
		}
		m.Host = append(m.Host, hu)
	}
	if sb.State != StateRunning {
		m.GuestError = fmt.Sprintf("VMM is %s", sb.State)
		m.CountersError = m.GuestError
		return m, nil
	}
	if agent, err := dial(ctx, sb.Dir); err != nil {
		m.GuestError = err.Error()
	} else {
		if st, err := agent.Stats(ctx, &api.StatsRequest{}); err != nil {
			m.GuestError = err.Error()
		} else {
			m.Guest = st
		}
		_ = agent.Close()
	}
	m.Counters, m.CountersError = r.counters(ctx, sb)
	return m, nil
}

func (r *Reader) counters(ctx context.Context, sb SandboxInfo) (map[string]map[string]int64, string) {
	c, closeFn, err := vmmClient(sb)
	if err != nil {
		return nil, err.Error()
	}
	defer closeFn()
	cr, ok := c.(hypervisor.CountersReader)
	if !ok {
		return nil, fmt.Sprintf("not available: %s reports no device counters", sb.Hypervisor)
	}
	counters, err := cr.Counters(ctx)
	if err != nil {
		return nil, err.Error()
	}
	return counters, ""
}
