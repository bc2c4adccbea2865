package cri

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/veil-runtime/veil/test/harness"
)

// Client wraps a harness CRI client with the few compound steps pod tests
// repeat.
type Client struct {
	*harness.CRIClient
}

// New returns a Client on c, which must run in CRI mode. Close it.
func New(c *harness.Containerd) (*Client, error) {
	cl, err := c.CRIClient()
	if err != nil {
		return nil, err
	}
	return &Client{cl}, nil
}

// Pull pulls ref (through the harness registry's mirrors) and returns the
// image reference CRI resolved it to.
func (c *Client) Pull(ctx context.Context, ref string, pod *runtimeapi.PodSandboxConfig) (string, error) {
	resp, err := c.Image.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}, SandboxConfig: pod})
	if err != nil {
		return "", fmt.Errorf("pull %s: %w", ref, err)
	}
	return resp.GetImageRef(), nil
}

// PodConfig returns a minimal pod sandbox config named name whose
// container logs go under logDir.
func PodConfig(name, logDir string) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "veil-test", Uid: name + "-uid"},
		Hostname:     name,
		LogDirectory: logDir,
		Linux:        &runtimeapi.LinuxPodSandboxConfig{},
	}
}

// RunPod runs a pod sandbox with the runtime handler and returns its id.
func (c *Client) RunPod(ctx context.Context, pod *runtimeapi.PodSandboxConfig, handler string) (string, error) {
	resp, err := c.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: pod, RuntimeHandler: handler})
	if err != nil {
		return "", fmt.Errorf("run pod sandbox %s (handler %s): %w", pod.GetMetadata().GetName(), handler, err)
	}
	return resp.GetPodSandboxId(), nil
}

// RemovePod stops and removes a pod sandbox and its containers.
func (c *Client) RemovePod(ctx context.Context, podID string) error {
	_, stopErr := c.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID})
	if stopErr != nil {
		stopErr = fmt.Errorf("stop pod sandbox %s: %w", podID, stopErr)
	}
	_, rmErr := c.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID})
	if rmErr != nil {
		rmErr = fmt.Errorf("remove pod sandbox %s: %w", podID, rmErr)
	}
	return errors.Join(stopErr, rmErr)
}

// Container returns a container config named name running command in
// image, logging to <name>.log in the pod's log directory.
func Container(name, image string, command ...string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: image},
		Command:  command,
		LogPath:  name + ".log",
		Linux:    &runtimeapi.LinuxContainerConfig{},
	}
}

// StartContainer creates and starts a container in a pod and returns its id.
func (c *Client) StartContainer(ctx context.Context, podID string, pod *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) (string, error) {
	resp, err := c.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: pod})
	if err != nil {
		return "", fmt.Errorf("create container %s: %w", cfg.GetMetadata().GetName(), err)
	}
	id := resp.GetContainerId()
	if _, err := c.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		return id, fmt.Errorf("start container %s (%s): %w", cfg.GetMetadata().GetName(), id, err)
	}
	return id, nil
}

// WaitExited polls the container's status until it has exited (or ctx
// ends) and returns that status.
func (c *Client) WaitExited(ctx context.Context, id string) (*runtimeapi.ContainerStatus, error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := c.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
		if err != nil {
			return nil, fmt.Errorf("status of container %s: %w", id, err)
		}
		if st := resp.GetStatus(); st.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("container %s still %s: %w", id, resp.GetStatus().GetState(), ctx.Err())
		case <-tick.C:
		}
	}
}

// ReadLog returns the messages of a CRI container log file
// ("<time> <stream> <P|F> <message>" lines), partial lines joined.
func ReadLog(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read container log: %w", err)
	}
	defer func() { _ = f.Close() }()
	var b strings.Builder
	s := bufio.NewScanner(f)
	for s.Scan() {
		parts := strings.SplitN(s.Text(), " ", 4)
		if len(parts) < 3 {
			return "", fmt.Errorf("container log %s: malformed line %q", path, s.Text())
		}
		if len(parts) == 4 {
			b.WriteString(parts[3])
		}
		if parts[2] == "F" {
			b.WriteByte('\n')
		}
	}
	if err := s.Err(); err != nil {
		return "", fmt.Errorf("read container log %s: %w", path, err)
	}
	return b.String(), nil
}

// LogPath is where CRI writes a container's log for pod and cfg.
func LogPath(pod *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) string {
	return filepath.Join(pod.GetLogDirectory(), cfg.GetLogPath())
}
