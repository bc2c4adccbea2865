package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/cgroups"
	cgmanager "github.com/opencontainers/cgroups/manager"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/veil-runtime/veil/agent/stream"
)

// warmUpTimeout bounds a warm-up.
const warmUpTimeout = 30 * time.Second

// WarmUp starts a pod once and removes it, leaving nothing: a pod holder
// and a container of its pod that runs `sh -c 'exit 0'` from a copy of
// busybox, in dir (which must not exist) and the cgroup /veil-warmup,
// through a Manager of their own. A warm pool VM does it before it waits
// for its pod, so that the pod's start runs code the guest ran already:
// under TCG, code QEMU translated already (a pod's first container
// start in a fresh VM is several times slower than its second).
func WarmUp(ctx context.Context, dir, busybox string) (retErr error) {
	ctx, cancel := context.WithTimeout(ctx, warmUpTimeout)
	defer cancel()
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("warm-up directory: %w", err)
	}
	m := NewManager(Config{StateRoot: filepath.Join(dir, "state"), SharedDir: dir}, noStreams{})
	defer func() {
		// Its own time: ctx may have ended, and a removal that gives up
		// early would leave processes and cgroups.
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), killTimeout+5*time.Second)
		defer ccancel()
		retErr = errors.Join(retErr, m.RemoveAll(cctx), os.RemoveAll(dir), removeCgroup("/"+warmUpCgroup))
	}()
	pod, app := filepath.Join(dir, "pod"), filepath.Join(dir, "app")
	if err := os.MkdirAll(pod, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(app, "bin"), 0o755); err != nil {
		return err
	}
	if err := copyFile(busybox, filepath.Join(app, "bin", "sh")); err != nil {
		return fmt.Errorf("warm-up rootfs: %w", err)
	}
	podSpec, appSpec, err := warmUpSpecs()
	if err != nil {
		return err
	}
	if err := m.Create(ctx, "pod", podSpec, CreateOptions{Rootfs: pod, PodHolder: true}); err != nil {
		return err
	}
	if _, err := m.Start(ctx, "pod"); err != nil {
		return err
	}
	if err := m.Create(ctx, "app", appSpec, CreateOptions{Rootfs: app, PodContainerID: "pod"}); err != nil {
		return err
	}
	if _, err := m.Start(ctx, "app"); err != nil {
		return err
	}
	e, err := m.Wait(ctx, "app", "")
	if err != nil {
		return err
	}
	if e.Status != 0 {
		return fmt.Errorf("warm-up container exited with %d", e.Status)
	}
	if err := m.Signal(ctx, "pod", "", syscall.SIGKILL, false); err != nil {
		return err
	}
	_, err = m.Wait(ctx, "pod", "")
	return err
}

// warmUpCgroup is the parent cgroup of the warm-up's containers.
const warmUpCgroup = "veil-warmup"

// removeCgroup removes an empty cgroup (in every hierarchy on v1).
func removeCgroup(path string) error {
	cg, err := cgmanager.New(&cgroups.Cgroup{Path: path, Resources: &cgroups.Resources{}})
	if err == nil {
		err = cg.Destroy()
	}
	if err != nil {
		return fmt.Errorf("remove cgroup %s: %w", path, err)
	}
	return nil
}

// warmUpSpecs are a pod's sandbox container and a container of the pod
// as CRI makes them (runc's defaults, namespace paths the rewrite joins).
func warmUpSpecs() (pod, app []byte, err error) {
	ps := specconv.Example()
	ps.Hostname = "warmup"
	ps.Linux.CgroupsPath = "/" + warmUpCgroup + "/pod"
	ps.Linux.Namespaces = []specs.LinuxNamespace{
		{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
	}
	as := specconv.Example()
	as.Hostname = ""
	as.Process.Args = []string{"/bin/sh", "-c", "exit 0"}
	as.Linux.CgroupsPath = "/" + warmUpCgroup + "/app"
	as.Linux.Namespaces = []specs.LinuxNamespace{
		{Type: specs.PIDNamespace, Path: "/pod"}, {Type: specs.IPCNamespace, Path: "/pod"},
		{Type: specs.UTSNamespace, Path: "/pod"}, {Type: specs.MountNamespace},
	}
	if pod, err = json.Marshal(ps); err != nil {
		return nil, nil, err
	}
	app, err = json.Marshal(as)
	return pod, app, err
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// noStreams is the stream source of processes without stdio.
type noStreams struct{}

func (noStreams) Take(context.Context, stream.Key) (net.Conn, error) {
	return nil, fmt.Errorf("a warm-up process has no streams: %w", errdefs.ErrNotFound)
}

func (noStreams) Discard(string, string, bool) {}
