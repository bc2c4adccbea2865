package server

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/ttrpc"
	"github.com/opencontainers/runc/libcontainer"
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
	"github.com/opencontainers/runc/libcontainer/specconv"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/agent/container"
	"github.com/veil-runtime/veil/test/integration"
)

// TestMain lets libcontainer re-execute this test binary as `init`.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		libcontainer.Init()
		return
	}
	os.Exit(m.Run())
}

// TestServeOverTTRPC drives the whole server (ttrpc + stream listener +
// containers) over Unix sockets, as the host does over hybrid vsock.
func TestServeOverTTRPC(t *testing.T) {
	integration.Require(t, integration.Root, integration.File("/bin/busybox", "apt-get install busybox-static"))
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	shared := filepath.Join(dir, "shared")
	rootfs := filepath.Join(shared, "c1", "rootfs")
	for _, d := range []string{"bin", "proc", "dev", "sys"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin/busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "echo"} {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}

	opts := Options{Version: "test", UnixDir: dir, Container: container.Config{StateRoot: filepath.Join(dir, "state"), SharedDir: shared}, Guest: &fakeGuest{}}
	agentL, streamL, err := Listen(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, agentL, streamL, opts) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()

	conn, err := net.Dial("unix", filepath.Join(dir, "agent.sock"))
	if err != nil {
		t.Fatal(err)
	}
	client := ttrpc.NewClient(conn)
	defer func() { _ = client.Close() }()
	agent := api.NewAgentClient(client)
	rctx, rcancel := context.WithTimeout(ctx, time.Minute)
	defer rcancel()

	h, err := agent.Health(rctx, &api.HealthRequest{})
	if err != nil || h.ApiVersion != api.APIVersion || h.AgentVersion != "test" || h.KernelRelease == "" {
		t.Fatalf("health = %v, %v", h, err)
	}
	if _, err := agent.CreateSandbox(rctx, &api.CreateSandboxRequest{SandboxId: "sb", Hostname: "pod", SharedFsTag: "veil"}); err != nil {
		t.Fatal(err)
	}

	dial := func(cid string, s api.Stream) net.Conn {
		c, err := net.Dial("unix", filepath.Join(dir, "stream.sock"))
		if err != nil {
			t.Fatal(err)
		}
		if err := api.WriteStreamHeader(c, api.StreamHeader{ContainerID: cid, Stream: s}); err != nil {
			t.Fatal(err)
		}
		return c
	}
	spec := func(args ...string) []byte {
		s := specconv.Example()
		s.Process.Args = args
		s.Process.Env = []string{"PATH=/bin"}
		b, _ := json.Marshal(s)
		return b
	}

	cases := []struct {
		name       string
		args       []string
		wantOut    string
		wantStatus uint32
		startCode  codes.Code
		startMsg   string
	}{
		{name: "hello", args: []string{"sh", "-c", "echo hello; exit 7"}, wantOut: "hello\n", wantStatus: 7},
		{name: "nosuchcmd", args: []string{"nosuchcmd"}, startCode: codes.Unknown, startMsg: `exec: "nosuchcmd": executable file not found in $PATH`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := dial("c1", api.StreamStdout)
			defer func() { _ = out.Close() }()
			_, err := agent.CreateContainer(rctx, &api.CreateContainerRequest{ContainerId: "c1", Spec: spec(tc.args...), Rootfs: rootfs, Stdio: &api.Stdio{Stdout: true}})
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if _, err := agent.RemoveContainer(rctx, &api.RemoveContainerRequest{ContainerId: "c1", Force: true}); err != nil {
					t.Errorf("remove: %v", err)
				}
			}()
			st, err := agent.StartContainer(rctx, &api.ContainerRequest{ContainerId: "c1"})
			if tc.startMsg != "" {
				s, _ := status.FromError(err)
				if s.Code() != tc.startCode || !strings.Contains(s.Message(), tc.startMsg) {
					t.Fatalf("start error %v, want %v containing %q", err, tc.startCode, tc.startMsg)
				}
				return
			}
			if err != nil || st.Pid == 0 {
				t.Fatalf("start = %v, %v", st, err)
			}
			w, err := agent.WaitProcess(rctx, &api.ProcessRequest{ContainerId: "c1"})
			if err != nil || w.ExitStatus != tc.wantStatus || w.ExitedAtUnixNano == 0 {
				t.Fatalf("wait = %v, %v", w, err)
			}
			b, err := io.ReadAll(out)
			if err != nil || string(b) != tc.wantOut {
				t.Fatalf("stdout %q, %v", b, err)
			}
		})
	}

	if _, err := agent.StartContainer(rctx, &api.ContainerRequest{ContainerId: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("start of unknown container: %v", err)
	}
	for _, rp := range []struct {
		req  *api.ProcessRequest
		want codes.Code
	}{
		{req: &api.ProcessRequest{ContainerId: "nope"}, want: codes.InvalidArgument},
		{req: &api.ProcessRequest{ContainerId: "nope", ExecId: "e1"}, want: codes.NotFound},
	} {
		if _, err := agent.RemoveProcess(rctx, rp.req); status.Code(err) != rp.want {
			t.Fatalf("RemoveProcess(%v) = %v, want %v", rp.req, err, rp.want)
		}
	}
	if _, err := agent.CreateContainer(rctx, &api.CreateContainerRequest{ContainerId: "bad", Spec: []byte("{"), Rootfs: rootfs}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("create with bad spec: %v", err)
	}
	if _, err := agent.CreateSandbox(rctx, &api.CreateSandboxRequest{SandboxId: "sb"}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("second create sandbox: %v", err)
	}
	if _, err := agent.DestroySandbox(rctx, &api.DestroySandboxRequest{SandboxId: "sb"}); err != nil {
		t.Fatal(err)
	}
}
