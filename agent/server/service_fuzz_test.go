package server

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/agent/container"
	"github.com/veil-runtime/veil/agent/stream"
)

// noStreams is a StreamSource that never has a connection.
type noStreams struct{}

func (noStreams) Take(context.Context, stream.Key) (net.Conn, error) {
	return nil, errors.New("no stream connections in this test")
}
func (noStreams) Discard(string, string, bool) {}

// fuzzRPC is one agent RPC driven with a request decoded from fuzz input.
type fuzzRPC struct {
	name string
	req  func() proto.Message
	call func(ctx context.Context, s *Service, m proto.Message) error
}

var fuzzRPCs = []fuzzRPC{
	{"CreateSandbox", func() proto.Message { return &api.CreateSandboxRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		_, err := s.CreateSandbox(ctx, m.(*api.CreateSandboxRequest))
		return err
	}},
	{"DestroySandbox", func() proto.Message { return &api.DestroySandboxRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		_, err := s.DestroySandbox(ctx, m.(*api.DestroySandboxRequest))
		return err
	}},
	{"CreateContainer", func() proto.Message { return &api.CreateContainerRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		_, err := s.CreateContainer(ctx, m.(*api.CreateContainerRequest))
		return err
	}},
	{"StartContainer", func() proto.Message { return &api.ContainerRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		_, err := s.StartContainer(ctx, m.(*api.ContainerRequest))
		return err
	}},
	{"RemoveContainer", func() proto.Message { return &api.RemoveContainerRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		_, err := s.RemoveContainer(ctx, m.(*api.RemoveContainerRequest))
		return err
	}},
	{"ExecProcess", func() proto.Message { return &api.ExecProcessRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		_, err := s.ExecProcess(ctx, m.(*api.ExecProcessRequest))
		return err
	}},
	{"WaitProcess", func() proto.Message { return &api.ProcessRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		_, err := s.WaitProcess(ctx, m.(*api.ProcessRequest))
		return err
	}},
	{"SignalProcess", func() proto.Message { return &api.SignalRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		_, err := s.SignalProcess(ctx, m.(*api.SignalRequest))
		return err
	}},
	{"CloseStdin", func() proto.Message { return &api.ProcessRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		_, err := s.CloseStdin(ctx, m.(*api.ProcessRequest))
		return err
	}},
	{"ResizeTTY", func() proto.Message { return &api.ResizeTTYRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		_, err := s.ResizeTTY(ctx, m.(*api.ResizeTTYRequest))
		return err
	}},
	{"RemoveProcess", func() proto.Message { return &api.ProcessRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		_, err := s.RemoveProcess(ctx, m.(*api.ProcessRequest))
		return err
	}},
	{"ListPids", func() proto.Message { return &api.ContainerRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		_, err := s.ListPids(ctx, m.(*api.ContainerRequest))
		return err
	}},
	{"UpdateContainer", func() proto.Message { return &api.UpdateContainerRequest{} }, func(ctx context.Context, s *Service, m proto.Message) error {
		_, err := s.UpdateContainer(ctx, m.(*api.UpdateContainerRequest))
		return err
	}},
}

// FuzzServiceRequests sends arbitrary protobuf-decoded requests to a
// fresh agent service backed by a real, empty container manager whose
// share is missing (so no container can ever be created) and a fake
// guest. No request may panic; every error crossing the service edge is
// a gRPC status; CreateSandbox reaches the guest only with a valid
// sandbox id; a signal outside 1..64 is refused as InvalidArgument; and
// no container ever exists afterwards.
func FuzzServiceRequests(f *testing.F) {
	seeds := []struct {
		rpc uint8
		msg proto.Message
	}{
		{0, &api.CreateSandboxRequest{SandboxId: "pod1", Hostname: "h", SharedFsTag: "veil", ShmSizeBytes: 1 << 20}},
		{0, &api.CreateSandboxRequest{SandboxId: "../etc", Hostname: "h"}},
		{0, &api.CreateSandboxRequest{SandboxId: ""}},
		{1, &api.DestroySandboxRequest{SandboxId: "other"}},
		{2, &api.CreateContainerRequest{ContainerId: "c1", Spec: []byte(`{"process":{"args":["sh"]}}`), Rootfs: "/run/veil/shared/c1/rootfs", Stdio: &api.Stdio{Stdout: true}}},
		{2, &api.CreateContainerRequest{ContainerId: "c1", Rootfs: "/etc", Submounts: []string{"/run/veil/shared/../../etc/shadow"}}},
		{2, &api.CreateContainerRequest{ContainerId: "a/b", Stdio: &api.Stdio{Terminal: true, Stderr: true}, PodContainerId: "pod"}},
		{3, &api.ContainerRequest{ContainerId: "c1"}},
		{4, &api.RemoveContainerRequest{ContainerId: "c1", Force: true}},
		{5, &api.ExecProcessRequest{ContainerId: "c1", ExecId: "e1", Process: []byte(`{"args":["ls"]}`), Stdio: &api.Stdio{Stdin: true}}},
		{5, &api.ExecProcessRequest{ContainerId: "c1", ExecId: "", Process: []byte(`{}`)}},
		{5, &api.ExecProcessRequest{ContainerId: "c1", ExecId: "../e", Process: []byte(`{"args":["ls"]}`)}},
		{6, &api.ProcessRequest{ContainerId: "c1", ExecId: "e1"}},
		{7, &api.SignalRequest{ContainerId: "c1", Signal: 9, All: true}},
		{7, &api.SignalRequest{ContainerId: "c1", Signal: 65}},
		{7, &api.SignalRequest{ContainerId: "c1", Signal: 0}},
		{8, &api.ProcessRequest{ContainerId: "c1"}},
		{9, &api.ResizeTTYRequest{ContainerId: "c1", Width: 80, Height: 24}},
		{10, &api.ProcessRequest{ContainerId: "c1", ExecId: "e1"}},
		{11, &api.ContainerRequest{ContainerId: ""}},
		{12, &api.UpdateContainerRequest{ContainerId: "c1", Resources: []byte(`{"memory":{"limit":-1}}`)}},
	}
	for _, s := range seeds {
		b, err := proto.Marshal(s.msg)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s.rpc, b)
	}
	f.Add(uint8(200), []byte{0xff, 0xff, 0xff})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		rpc := fuzzRPCs[int(which)%len(fuzzRPCs)]
		m := rpc.req()
		if err := proto.Unmarshal(data, m); err != nil {
			return
		}
		ctx := context.Background()
		mgr := container.NewManager(container.Config{
			StateRoot: filepath.Join(dir, "state"),
			SharedDir: filepath.Join(dir, "missing-share"),
			ProcSys:   filepath.Join(dir, "missing-proc-sys"),
		}, noStreams{})
		g := &fakeGuest{}
		s := NewService("fuzz", mgr, g)
		err := rpc.call(ctx, s, m)
		if err != nil {
			st, ok := status.FromError(err)
			if !ok || st.Code() == codes.OK {
				t.Fatalf("%s(%v): error %v is not a gRPC status", rpc.name, m, err)
			}
		}
		switch r := m.(type) {
		case *api.CreateSandboxRequest:
			if api.ValidateID("sandbox id", r.SandboxId) != nil && (err == nil || g.hostname != "" || g.tag != "") {
				t.Fatalf("CreateSandbox with invalid id %q reached the guest (err %v)", r.SandboxId, err)
			}
		case *api.SignalRequest:
			if (r.Signal == 0 || r.Signal > 64) && status.Code(err) != codes.InvalidArgument {
				t.Fatalf("SignalProcess with signal %d: %v", r.Signal, err)
			}
		case *api.ExecProcessRequest:
			if err == nil {
				t.Fatalf("ExecProcess succeeded in a manager without containers")
			}
			if api.ValidateID("exec id", r.ExecId) != nil && status.Code(err) != codes.InvalidArgument {
				t.Fatalf("ExecProcess with invalid exec id %q: %v", r.ExecId, err)
			}
		case *api.CreateContainerRequest:
			if err == nil {
				t.Fatalf("CreateContainer succeeded without a share")
			}
			if api.ValidateID("container id", r.ContainerId) != nil && status.Code(err) != codes.InvalidArgument {
				t.Fatalf("CreateContainer with invalid id %q: %v", r.ContainerId, err)
			}
		}
		if pids, err := mgr.Pids(ctx, "c1"); err == nil || !errdefs.IsNotFound(err) {
			t.Fatalf("a container exists after %s: pids %v, %v", rpc.name, pids, err)
		}
	})
}
