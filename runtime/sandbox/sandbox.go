package sandbox

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/containerd/log"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/agentclient"
	"github.com/veil-runtime/veil/runtime/cgroup"
	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/console"
	"github.com/veil-runtime/veil/runtime/hypervisor"
	"github.com/veil-runtime/veil/runtime/hypervisor/registry"
	"github.com/veil-runtime/veil/runtime/jail"
	"github.com/veil-runtime/veil/runtime/network"
	"github.com/veil-runtime/veil/runtime/statedir"
	"github.com/veil-runtime/veil/runtime/vsock"
	"github.com/veil-runtime/veil/virtiofs"
)

// SharedFSTag is the virtio-fs tag of the shared directory.
const SharedFSTag = "veil"

// Options are the per-sandbox settings that do not come from the config.
type Options struct {
	// NetNSPath is the pod's network namespace; the VMM runs inside it, and
	// the VM gets a NIC for each of the pod's interfaces there (see
	// runtime/network).
	NetNSPath string
	// Hostname is the guest's hostname.
	Hostname string
	// DNS, when it names servers, becomes the guest's resolver
	// configuration; nil leaves the guest's as it is.
	DNS *api.DNS
	// ShmSizeBytes is the size of the pod's /dev/shm in the guest; 0 is
	// the agent's default (64 MiB).
	ShmSizeBytes uint64
	// CgroupsPath is the sandbox container's linux.cgroupsPath, and CRI
	// says the sandbox was made by CRI: the sandbox cgroup is then that
	// path (below the pod's cgroup); otherwise it is below
	// cgroups.parent.
	CgroupsPath string
	CRI         bool
	// OOMScoreAdj is the pod's oom_score_adj (its sandbox container's),
	// which every helper takes; nil leaves 0.
	OOMScoreAdj *int
	// Pod names the Kubernetes pod, recorded in the sandbox directory for
	// the tools that read it (runtime/inspect); zero for none.
	Pod statedir.Pod
	// AgentObserver, when set, is told of every request to the agent
	// (its method, duration and error).
	AgentObserver agentclient.Observer
}

// Sandbox is a running sandbox VM with its agent connection.
type Sandbox struct {
	id  string
	dir statedir.Dir
	cfg *config.Config
	vmm string // the resolved hypervisor name
	// observe is told of every agent request (Options.AgentObserver).
	observe agentclient.Observer

	lease *jail.Lease    // nil without the jail
	cg    *cgroup.Cgroup // nil without the sandbox cgroup
	cons  *console.Log
	share *statedir.Share
	fsd   *virtiofs.Daemon
	net   *network.Endpoints // nil without a network namespace
	vm    hypervisor.VM
	agent *agentclient.Client
	// keeper is the warm pool process that started the VM, for a
	// sandbox that was claimed from the pool (Adopt); nil otherwise.
	keeper Keeper

	// oomMu guards oomAdj, the helpers' oom_score_adj.
	oomMu  sync.Mutex
	oomAdj int

	// resizeMu guards size, the VM's current size (see Resize).
	resizeMu sync.Mutex
	size     hypervisor.Resize

	// stages are how long each step of Start took; readyAt is when the
	// agent's ready notification arrived.
	stages  []Stage
	readyAt time.Time

	stopping chan struct{} // closed when Stop begins
	stopOnce sync.Once
	stopErr  error
}

// Config is the configuration the sandbox was started with (after
// annotations). Callers must not modify it.
func (s *Sandbox) Config() *config.Config { return s.cfg }

// ID is the sandbox id.
func (s *Sandbox) ID() string { return s.id }

// Dir is the sandbox's state directory.
func (s *Sandbox) Dir() string { return s.dir.Path() }

// Share is the sandbox's virtio-fs share: containers' root filesystems
// and volumes go in and out of the guest's view through it.
func (s *Sandbox) Share() *statedir.Share { return s.share }

// Agent is the ttrpc client of the guest agent.
func (s *Sandbox) Agent() api.AgentService {
	if s.agent == nil {
		return nil
	}
	return s.agent
}

// Done is closed when the VM died or was stopped.
func (s *Sandbox) Done() <-chan struct{} { return s.vm.Done() }

// VMMPid is the host pid of the VMM, the process that stands for the
// sandbox on the host.
func (s *Sandbox) VMMPid() int { return s.vm.Pid() }

// Pids maps "qemu" (the VMM), "virtiofsd", the VMM's helper processes
// ("vhost-device-vsock") and, for a sandbox claimed from the warm pool,
// its "keeper" to their host pids.
func (s *Sandbox) Pids() map[string]int {
	pids := map[string]int{s.vmm: s.vm.Pid(), "virtiofsd": s.fsd.Pid()}
	if h, ok := s.vm.(hypervisor.HelperPids); ok {
		for k, v := range h.HelperPids() {
			pids[k] = v
		}
	}
	if s.keeper != nil {
		pids["keeper"] = s.keeper.Pid()
	}
	return pids
}

// DialStream opens a stdio stream connection to the guest (api.StreamPort)
// and writes its header. The returned conn is a *net.UnixConn, so it
// supports CloseWrite (to signal the end of stdin). Through
// vhost-device-vsock a half-close ends the guest connection in both
// directions (measured), so CloseWrite suits write-only streams (stdin).
func (s *Sandbox) DialStream(ctx context.Context, h api.StreamHeader) (net.Conn, error) {
	if err := h.Validate(); err != nil {
		return nil, err
	}
	conn, err := vsock.Dial(ctx, s.vsockPath(), api.StreamPort)
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: stream %s/%s/%s: %w", s.id, h.ContainerID, h.ExecID, h.Stream, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetWriteDeadline(dl)
	}
	if err := api.WriteStreamHeader(conn, h); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("sandbox %s: %w", s.id, err)
	}
	_ = conn.SetWriteDeadline(time.Time{})
	return conn, nil
}

func (s *Sandbox) vsockPath() string { return s.dir.File(statedir.VsockSocket) }

func (s *Sandbox) consolePath() string { return s.dir.File(statedir.ConsoleLog) }

// newHypervisor returns the driver the config selects, with its name and
// the reason it was chosen.
func newHypervisor(cfg *config.Config) (hypervisor.Hypervisor, string, string, error) {
	return registry.New(cfg)
}

func logger(ctx context.Context, id string) *log.Entry {
	return log.G(ctx).WithField("sandbox", id)
}
