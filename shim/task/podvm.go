package task

import (
	"context"
	"net"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/config"
)

// PodVM is the pod's sandbox VM as the task service sees it: one per
// shim, holding every container of the pod. runtime/sandbox.Sandbox is the
// real one (adapted by shim/launcher).
type PodVM interface {
	// ID is the sandbox's id (the pod's, or the first container's).
	ID() string
	// Share shows containers' filesystems to the guest.
	Share() ContainerShare
	// Agent is the guest agent, narrowed to the container and process
	// calls the task service makes (ContainerAgent).
	Agent() ContainerAgent
	// DialStream opens one stdio stream connection (see api.StreamHeader).
	DialStream(ctx context.Context, h api.StreamHeader) (net.Conn, error)
	// Config is the sandbox's effective configuration.
	Config() *config.Config
	// Done is closed when the VM died or was stopped.
	Done() <-chan struct{}
	// VMMPid is the host pid that stands for the sandbox's processes (the
	// hypervisor's), or 0 when unknown.
	VMMPid() int
	// FitResources makes the VM big enough for a container's limits
	// where the hypervisor can (the sizing policy is the sandbox's); a
	// VM that cannot grow keeps its size and bounds the limits.
	FitResources(ctx context.Context, res *specs.LinuxResources) error
	// Stop stops the VM and removes everything of the sandbox; it is
	// idempotent.
	Stop(ctx context.Context) error
}

// vmKiller is a sandbox that can end its VM at once, without the guest's
// help; Stop still cleans up after it.
type vmKiller interface {
	KillVM(ctx context.Context) error
}

// SandboxOptions are the per-sandbox settings taken from the first
// container's spec.
type SandboxOptions struct {
	// NetNSPath is the host network namespace the VM's network lives in;
	// empty runs the VM in the shim's namespace.
	NetNSPath string
	// Hostname is the guest's hostname.
	Hostname string
	// ConfigPath is the runtime option ConfigPath: the config file to use
	// instead of the shim's; empty for none.
	ConfigPath string
	// Annotations are the first container's OCI annotations; the
	// io.veil.config.* ones override the config (config.ApplyAnnotations).
	Annotations map[string]string
	// ShmSizeBytes is the size of the pod's /dev/shm; 0 for the default.
	ShmSizeBytes uint64
	// DNS is the pod's resolver configuration, or nil.
	DNS *api.DNS
	// CgroupsPath is the first container's linux.cgroupsPath and CRI
	// says it is a CRI sandbox container: the sandbox cgroup goes there
	// (below the pod's cgroup).
	CgroupsPath string
	CRI         bool
	// OOMScoreAdj is the first container's oom_score_adj, which the
	// sandbox's helpers take.
	OOMScoreAdj *int
	// AgentObserver, when set, is told of every request to the agent.
	AgentObserver func(method string, took time.Duration, err error)
}

// telemetryServer is a sandbox with a place for the shim's telemetry
// socket (optional ability).
type telemetryServer interface {
	TelemetrySocket() string
}

// Launcher starts sandboxes and cleans up after dead ones.
type Launcher interface {
	// Start boots a sandbox VM and returns once its agent answers.
	Start(ctx context.Context, id string, opts SandboxOptions) (PodVM, error)
	// Cleanup removes whatever a crashed shim left of sandbox id
	// (processes, state dir); it is idempotent.
	Cleanup(ctx context.Context, id string) error
}

// configurableLauncher is a launcher that can run sandboxes with another
// config file (optional ability): the one a container's runtime option
// ConfigPath names.
type configurableLauncher interface {
	ForConfig(path string) (Launcher, error)
}

// launcherFor returns the launcher that uses the config file at path, so
// that a sandbox started with it is stopped and cleaned up under that
// file's state_dir. Launchers without the ability are returned as they
// are.
func launcherFor(l Launcher, path string) (Launcher, error) {
	c, ok := l.(configurableLauncher)
	if !ok || path == "" {
		return l, nil
	}
	return c.ForConfig(path)
}
