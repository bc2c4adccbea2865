package torture

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/test/harness"
)

// qmpStop freezes p's VM (harness.QMP stop).
func (f *fixture) qmpStop(t testing.TB, p *pod) {
	t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
	defer cancel()
	if err := harness.QMP(ctx, filepath.Join(f.stateDir, p.id), "stop"); err != nil {
		t.Fatal(err)
	}
}

// frozenAgentRequest is timeouts.agent_request in TestFrozenVM: short,
// so that the case takes seconds, not minutes.
const frozenAgentRequest = 5 * time.Second

// TestFrozenVM freezes a pod's VM (QMP stop): the agent answers nothing.
// Each call that needs the guest, through CRI and through ctr (which
// shows the shim's own error), returns an error within
// timeouts.agent_request and a margin, and forced removal (stopp + rmp:
// its SIGKILL goes unanswered, so the shim ends the VM) completes within
// a bound.
func TestFrozenVM(t *testing.T) {
	f := newFixture(t, func(c *config.Config) { c.Timeouts.AgentRequest.Duration = frozenAgentRequest })
	cs := f.census()
	p := f.podOfTwo(t, "frozen")
	cs.sample()
	f.qmpStop(t, p)
	ctrA := p.ctrs[0]
	ctr := func(args ...string) func(context.Context) error {
		return func(ctx context.Context) error {
			out, err := f.c.CtrOutput(ctx, append([]string{"-n", "k8s.io"}, args...)...)
			if err == nil {
				return fmt.Errorf("ctr %v answered: %s", args, out)
			}
			return err
		}
	}
	calls := []struct {
		name string
		call func(ctx context.Context) error
		// shimMessage: the error must carry the shim's words (ctr shows
		// them; CRI puts its own around or instead of them).
		shimMessage bool
	}{
		{"CRI ExecSync (timeout 5s)", func(ctx context.Context) error {
			_, err := f.cl.Runtime.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: ctrA, Cmd: []string{"true"}, Timeout: 5})
			return err
		}, false},
		{"CRI ContainerStats", func(ctx context.Context) error {
			_, err := f.cl.Runtime.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{ContainerId: ctrA})
			return err
		}, false},
		{"CRI StopContainer (timeout 2s)", func(ctx context.Context) error {
			_, err := f.cl.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: ctrA, Timeout: 2})
			return err
		}, true},
		// containerd drops the shim's error and says "no metrics received".
		{"ctr task metrics", ctr("task", "metrics", ctrA), false},
		{"ctr task ps", ctr("task", "ps", ctrA), true},
		{"ctr task exec", ctr("task", "exec", "--exec-id", "frozen", ctrA, "true"), true},
		{"ctr task kill -s TERM", ctr("task", "kill", "-s", "SIGTERM", ctrA), true},
	}
	// An exec's start that fails rolls back with two more agent
	// requests (kill, remove), each bounded the same.
	bound := 3*frozenAgentRequest + 20*time.Second
	var outcomes []string
	for _, c := range calls {
		ctx, cancel := context.WithTimeout(f.ctx, callBound)
		start := time.Now()
		err := c.call(ctx)
		cancel()
		took := time.Since(start)
		t.Logf("%s: %s: %v", c.name, ms(took), err)
		switch {
		case err == nil:
			t.Errorf("%s: answered by a frozen guest", c.name)
		case took > bound:
			t.Errorf("%s: error after %s, want within %s: %v", c.name, ms(took), bound, err)
		case c.shimMessage && !strings.Contains(err.Error(), "agent did not answer"):
			t.Errorf("%s: error does not say the agent did not answer: %v", c.name, err)
		}
		outcomes = append(outcomes, fmt.Sprintf("%s: error after %s", c.name, ms(took)))
	}
	rm := f.remove(t, p)
	if max := 2*frozenAgentRequest + 30*time.Second; rm > max {
		t.Errorf("stopp+rmp took %s, want within %s", ms(rm), max)
	}
	record(t, row{
		Outcome: strings.Join(outcomes, "; ") + fmt.Sprintf("; stopp+rmp %s (agent_request %s)", ms(rm), frozenAgentRequest),
		Recover: ms(rm),
		Census:  cs.clean(t),
	})
}
