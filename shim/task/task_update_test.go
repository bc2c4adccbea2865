package task

import (
	"context"
	"encoding/json"
	"reflect"
	"sync"
	"testing"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/veil-runtime/veil/agent/api"
)

// updateAgent records UpdateContainer calls.
type updateAgent struct {
	*fakeAgent
	mu      sync.Mutex
	updates []*api.UpdateContainerRequest
}

func (a *updateAgent) UpdateContainer(_ context.Context, r *api.UpdateContainerRequest) (*api.Empty, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.updates = append(a.updates, r)
	return &api.Empty{}, nil
}

func (s *agentPodVM) Agent() ContainerAgent { return s.agent }

// TestUpdate checks that Update has the sandbox fit the VM to the new
// limits (its sizing policy is runtime/sandbox's, tested there) before the
// cgroup is updated, and that a failed fit leaves the cgroup alone.
func TestUpdate(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	u64 := func(v uint64) *uint64 { return &v }
	for _, tc := range []struct {
		name    string
		res     *specs.LinuxResources
		fitErr  error
		wantErr bool
	}{
		{name: "within the VM: cgroup only", res: &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(64 << 20)}}},
		{name: "more memory than the VM: grow first", res: &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(1 << 30)}}},
		{name: "more CPU than the VM: grow first", res: &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(300000), Period: u64(100000)}}},
		{name: "hotplug fails: error", res: &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(1 << 30)}}, fitErr: errdefs.ErrUnavailable, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			agent := &updateAgent{fakeAgent: f.agent}
			f.sb.fitErr = tc.fitErr
			f.l.sbOverride = &agentPodVM{fakePodVM: f.sb, agent: agent}
			f.createAndStart(t, "c1", "")
			any, err := typeurl.MarshalAnyToProto(tc.res)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.svc.Update(f.ctx, &taskAPI.UpdateTaskRequest{ID: "c1", Resources: any})
			if (err != nil) != tc.wantErr {
				t.Fatalf("Update: %v, want error %v", err, tc.wantErr)
			}
			if len(f.sb.fits) != 1 || !reflect.DeepEqual(f.sb.fits[0], tc.res) {
				t.Fatalf("FitResources calls %v, want one with %+v", f.sb.fits, tc.res)
			}
			if tc.wantErr {
				if len(agent.updates) != 0 {
					t.Fatalf("cgroup updated after a failed hotplug")
				}
				return
			}
			if len(agent.updates) != 1 {
				t.Fatalf("UpdateContainer calls: %d", len(agent.updates))
			}
			var got specs.LinuxResources
			if err := json.Unmarshal(agent.updates[0].Resources, &got); err != nil || !reflect.DeepEqual(&got, tc.res) {
				t.Fatalf("agent got %+v (%v), want %+v", got, err, tc.res)
			}
		})
	}
}

func (a oomAgent) WaitProcess(ctx context.Context, r *api.ProcessRequest) (*api.WaitResponse, error) {
	resp, err := a.fakeAgent.WaitProcess(ctx, r)
	if resp != nil {
		resp.OomKilled = true
	}
	return resp, err
}
