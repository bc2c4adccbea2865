package shim

import (
	"context"
	"encoding/json"
	"reflect"
	"sync"
	"testing"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/core/events"
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

// resizingSandbox is a sandbox whose VM can grow.
type resizingSandbox struct {
	*fakeSandbox
	agent   api.AgentService
	resizes [][2]uint64
	err     error
}

func (s *resizingSandbox) Agent() api.AgentService { return s.agent }
func (s *resizingSandbox) Resize(_ context.Context, vcpus uint32, mem uint64) error {
	s.resizes = append(s.resizes, [2]uint64{uint64(vcpus), mem})
	return s.err
}

func TestUpdate(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	u64 := func(v uint64) *uint64 { return &v }
	for _, tc := range []struct {
		name        string
		res         *specs.LinuxResources
		resizeErr   error
		wantResizes [][2]uint64
		wantErr     bool
	}{
		{name: "within the VM: cgroup only", res: &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(64 << 20)}}},
		{name: "more memory than the VM: grow first", res: &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(1 << 30)}}, wantResizes: [][2]uint64{{0, 1024}}},
		{name: "more CPU than the VM: grow first", res: &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(300000), Period: u64(100000)}}, wantResizes: [][2]uint64{{3, 0}}},
		{name: "hypervisor cannot hotplug: cgroup only", res: &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(300000), Period: u64(100000)}}, resizeErr: errdefs.ErrNotImplemented, wantResizes: [][2]uint64{{3, 0}}},
		{name: "hotplug fails: error", res: &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(1 << 30)}}, resizeErr: errdefs.ErrUnavailable, wantResizes: [][2]uint64{{0, 1024}}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			agent := &updateAgent{fakeAgent: f.agent}
			rs := &resizingSandbox{fakeSandbox: f.sb, agent: agent, err: tc.resizeErr}
			f.l.sbOverride = rs
			f.createAndStart(t, "c1", "")
			any, err := typeurl.MarshalAnyToProto(tc.res)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.svc.Update(f.ctx, &taskAPI.UpdateTaskRequest{ID: "c1", Resources: any})
			if (err != nil) != tc.wantErr {
				t.Fatalf("Update: %v, want error %v", err, tc.wantErr)
			}
			if !reflect.DeepEqual(rs.resizes, tc.wantResizes) {
				t.Fatalf("resizes %v, want %v", rs.resizes, tc.wantResizes)
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

// oomAgent answers WaitProcess with an OOM kill.
type oomAgent struct{ *fakeAgent }

func (a oomAgent) WaitProcess(ctx context.Context, r *api.ProcessRequest) (*api.WaitResponse, error) {
	resp, err := a.fakeAgent.WaitProcess(ctx, r)
	if resp != nil {
		resp.OomKilled = true
	}
	return resp, err
}

func TestOOMPublishedBeforeExit(t *testing.T) {
	f := newFixture(t)
	f.l.sbOverride = &resizingSandbox{fakeSandbox: f.sb, agent: oomAgent{f.agent}}
	f.createAndStart(t, "c1", "")
	f.agent.exitChan(procName("c1", "")) <- 137
	f.pub.waitFor(t, "TaskExit", isExit("c1"))
	f.pub.mu.Lock()
	evs := append([]events.Event(nil), f.pub.events...)
	f.pub.mu.Unlock()
	var seen []string
	for _, e := range evs {
		switch x := e.(type) {
		case *eventstypes.TaskOOM:
			seen = append(seen, "oom:"+x.ContainerID)
		case *eventstypes.TaskExit:
			seen = append(seen, "exit:"+x.ContainerID)
		}
	}
	if !reflect.DeepEqual(seen, []string{"oom:c1", "exit:c1"}) {
		t.Fatalf("events %v, want TaskOOM before TaskExit", seen)
	}
}
