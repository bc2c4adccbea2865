// Command fakeguest is a TEMPORARY stand-in for veil-agent used to check the
// host runtime before the real agent exists. It will be deleted.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"

	"github.com/containerd/ttrpc"
	"github.com/mdlayher/vsock"
	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/agent/api"
)

type agent struct{ api.AgentService }

func (agent) Health(context.Context, *api.HealthRequest) (*api.HealthResponse, error) {
	var u unix.Utsname
	unix.Uname(&u)
	return &api.HealthResponse{AgentVersion: "fake", ApiVersion: api.APIVersion, KernelRelease: unix.ByteSliceToString(u.Release[:])}, nil
}

func (agent) CreateSandbox(_ context.Context, r *api.CreateSandboxRequest) (*api.Empty, error) {
	os.MkdirAll(api.SharedDir, 0o755)
	if err := unix.Mount(r.SharedFsTag, api.SharedDir, "virtiofs", 0, ""); err != nil {
		return nil, fmt.Errorf("mount: %w", err)
	}
	unix.Sethostname([]byte(r.Hostname))
	return &api.Empty{}, nil
}

func (agent) DestroySandbox(context.Context, *api.DestroySandboxRequest) (*api.Empty, error) {
	return &api.Empty{}, unix.Unmount(api.SharedDir, unix.MNT_DETACH)
}

func (agent) CreateContainer(_ context.Context, r *api.CreateContainerRequest) (*api.Empty, error) {
	if _, err := os.Stat(filepath.Join(r.Rootfs, "bin/busybox")); err != nil {
		return nil, err
	}
	return &api.Empty{}, nil
}

func main() {
	l, err := vsock.Listen(api.AgentPort, nil)
	if err != nil {
		log.Fatal(err)
	}
	sl, err := vsock.Listen(api.StreamPort, nil)
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		for {
			c, err := sl.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				h, err := api.ReadStreamHeader(c)
				if err != nil {
					return
				}
				fmt.Fprintf(c, "hello %s\n", h.ContainerID)
				io.Copy(c, c)
			}()
		}
	}()
	s, err := ttrpc.NewServer()
	if err != nil {
		log.Fatal(err)
	}
	api.RegisterAgentService(s, agent{})
	log.Println("fake agent serving")
	log.Fatal(s.Serve(context.Background(), l))
}
