package server

import (
	"context"
	"fmt"
	"sync"
	"syscall"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/agent/container"
	"github.com/veil-runtime/veil/runtime/cleanup"
)

// Containers is what the service needs from the container manager.
type Containers interface {
	// Create creates a container whose init runs at Start.
	Create(ctx context.Context, id string, spec []byte, opts container.CreateOptions) error
	// Start runs the container's init and returns its guest pid.
	Start(ctx context.Context, id string) (int, error)
	// Exec runs an extra process in a running container.
	Exec(ctx context.Context, id, execID string, process []byte, sio container.Stdio) (int, error)
	// Wait blocks until the process exited and its output was delivered.
	Wait(ctx context.Context, id, execID string) (container.Exit, error)
	// Signal signals a process, or every process of the container.
	Signal(ctx context.Context, id, execID string, sig syscall.Signal, all bool) error
	// CloseStdin closes a process's stdin.
	CloseStdin(ctx context.Context, id, execID string) error
	// Resize sets a process's terminal size.
	Resize(ctx context.Context, id, execID string, width, height uint32) error
	// Pids lists a container's guest pids.
	Pids(ctx context.Context, id string) ([]int, error)
	// RemoveProcess forgets an exited exec process; the init process is
	// refused (InvalidArgument), a running one too (FailedPrecondition).
	RemoveProcess(ctx context.Context, id, execID string) error
	// Update applies an OCI LinuxResources (JSON) to a container's cgroup.
	Update(ctx context.Context, id string, resources []byte) error
	// Pause freezes a running container's processes; Resume thaws them.
	Pause(ctx context.Context, id string) error
	Resume(ctx context.Context, id string) error
	// Remove destroys a container (killing it first with force).
	Remove(ctx context.Context, id string, force bool) error
	// RemoveAll force-removes every container.
	RemoveAll(ctx context.Context) error
}

// Guest is what the service needs from the guest system for a sandbox.
type Guest interface {
	// SetHostname sets the guest's host name.
	SetHostname(name string) error
	// MountShare mounts the virtio-fs share with tag at dir.
	MountShare(ctx context.Context, tag, dir string) error
	// MountTmpfs mounts a tmpfs of sizeBytes at dir.
	MountTmpfs(ctx context.Context, dir string, sizeBytes uint64) error
	// UnmountShare unmounts dir.
	UnmountShare(ctx context.Context, dir string) error
}

// DefaultShmSize is the pod's /dev/shm size when the host names none (as
// containerd's default).
const DefaultShmSize = 64 << 20

// Service implements api.AgentService.
type Service struct {
	version    string
	containers Containers
	guest      Guest
	network    Network
	warmUp     func(context.Context) error
	// procRoot is where Stats reads the guest's /proc.
	procRoot string
	// cpuRoot is where OnlineCPUs finds the guest's CPUs.
	cpuRoot string

	mu        sync.Mutex
	sandboxID string
	shareDir  string
	shmDir    string
}

var _ api.AgentService = (*Service)(nil)

// NewService returns the agent service; version is the agent's release.
func NewService(version string, c Containers, g Guest) *Service {
	return &Service{version: version, containers: c, guest: g, procRoot: "/proc", cpuRoot: "/sys/devices/system/cpu"}
}

// Health reports the agent's, the protocol's and the kernel's versions.
func (s *Service) Health(ctx context.Context, _ *api.HealthRequest) (*api.HealthResponse, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return nil, toStatus(fmt.Errorf("uname: %w", err))
	}
	return &api.HealthResponse{
		AgentVersion:  s.version,
		ApiVersion:    api.APIVersion,
		KernelRelease: unix.ByteSliceToString(u.Release[:]),
	}, nil
}

// CreateSandbox sets the host name and mounts the share at api.SharedDir.
func (s *Service) CreateSandbox(ctx context.Context, r *api.CreateSandboxRequest) (*api.Empty, error) {
	return &api.Empty{}, toStatus(s.createSandbox(ctx, r))
}

func (s *Service) createSandbox(ctx context.Context, r *api.CreateSandboxRequest) (retErr error) {
	if err := api.ValidateID("sandbox id", r.SandboxId); err != nil {
		return fmt.Errorf("create sandbox: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sandboxID != "" {
		return fmt.Errorf("create sandbox %s: sandbox %s exists: %w", r.SandboxId, s.sandboxID, errdefs.ErrAlreadyExists)
	}
	var undo cleanup.Stack
	defer undo.OnError(ctx, &retErr)
	if r.Hostname != "" {
		if err := s.guest.SetHostname(r.Hostname); err != nil {
			return fmt.Errorf("create sandbox %s: %w", r.SandboxId, err)
		}
	}
	if r.SharedFsTag != "" {
		if err := s.guest.MountShare(ctx, r.SharedFsTag, api.SharedDir); err != nil {
			return fmt.Errorf("create sandbox %s: %w", r.SandboxId, err)
		}
		s.shareDir = api.SharedDir
		undo.Push("mount the share", func(ctx context.Context) error {
			s.shareDir = ""
			return s.guest.UnmountShare(ctx, api.SharedDir)
		})
	}
	shm := r.ShmSizeBytes
	if shm == 0 {
		shm = DefaultShmSize
	}
	if err := s.guest.MountTmpfs(ctx, api.PodShmDir, shm); err != nil {
		return fmt.Errorf("create sandbox %s: pod shm: %w", r.SandboxId, err)
	}
	s.shmDir = api.PodShmDir
	s.sandboxID = r.SandboxId
	log.G(ctx).WithFields(log.Fields{"sandbox": r.SandboxId, "hostname": r.Hostname, "tag": r.SharedFsTag, "shm": shm}).Info("sandbox created")
	return nil
}

// DestroySandbox kills and removes every container and unmounts the share.
func (s *Service) DestroySandbox(ctx context.Context, r *api.DestroySandboxRequest) (*api.Empty, error) {
	return &api.Empty{}, toStatus(s.destroySandbox(ctx, r))
}

func (s *Service) destroySandbox(ctx context.Context, r *api.DestroySandboxRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sandboxID != "" && r.SandboxId != "" && r.SandboxId != s.sandboxID {
		return fmt.Errorf("destroy sandbox %s: this guest runs sandbox %s: %w", r.SandboxId, s.sandboxID, errdefs.ErrNotFound)
	}
	if err := s.containers.RemoveAll(ctx); err != nil {
		return fmt.Errorf("destroy sandbox %s: %w", r.SandboxId, err)
	}
	if s.shareDir != "" {
		if err := s.guest.UnmountShare(ctx, s.shareDir); err != nil {
			return fmt.Errorf("destroy sandbox %s: %w", r.SandboxId, err)
		}
		s.shareDir = ""
	}
	if s.shmDir != "" {
		if err := s.guest.UnmountShare(ctx, s.shmDir); err != nil {
			return fmt.Errorf("destroy sandbox %s: %w", r.SandboxId, err)
		}
		s.shmDir = ""
	}
	s.sandboxID = ""
	log.G(ctx).WithField("sandbox", r.SandboxId).Info("sandbox destroyed")
	return nil
}

func stdioOf(s *api.Stdio) container.Stdio {
	if s == nil {
		return container.Stdio{}
	}
	return container.Stdio{Stdin: s.Stdin, Stdout: s.Stdout, Stderr: s.Stderr, Terminal: s.Terminal}
}

// CreateContainer creates a container; its init runs at StartContainer.
func (s *Service) CreateContainer(ctx context.Context, r *api.CreateContainerRequest) (*api.Empty, error) {
	err := s.containers.Create(ctx, r.ContainerId, r.Spec, container.CreateOptions{
		Rootfs:         r.Rootfs,
		Stdio:          stdioOf(r.Stdio),
		PodContainerID: r.PodContainerId,
		Submounts:      r.Submounts,
		PodHolder:      r.PodHolder,
	})
	return &api.Empty{}, toStatus(err)
}

// StartContainer runs the container's init process.
func (s *Service) StartContainer(ctx context.Context, r *api.ContainerRequest) (*api.StartResponse, error) {
	pid, err := s.containers.Start(ctx, r.ContainerId)
	if err != nil {
		return nil, toStatus(err)
	}
	return &api.StartResponse{Pid: uint32(pid)}, nil
}

// RemoveContainer destroys a container.
func (s *Service) RemoveContainer(ctx context.Context, r *api.RemoveContainerRequest) (*api.Empty, error) {
	return &api.Empty{}, toStatus(s.containers.Remove(ctx, r.ContainerId, r.Force))
}

// PauseContainer freezes a running container's processes.
func (s *Service) PauseContainer(ctx context.Context, r *api.ContainerRequest) (*api.Empty, error) {
	return &api.Empty{}, toStatus(s.containers.Pause(ctx, r.ContainerId))
}

// ResumeContainer thaws a paused container.
func (s *Service) ResumeContainer(ctx context.Context, r *api.ContainerRequest) (*api.Empty, error) {
	return &api.Empty{}, toStatus(s.containers.Resume(ctx, r.ContainerId))
}

// ExecProcess runs an extra process in a running container.
func (s *Service) ExecProcess(ctx context.Context, r *api.ExecProcessRequest) (*api.StartResponse, error) {
	pid, err := s.containers.Exec(ctx, r.ContainerId, r.ExecId, r.Process, stdioOf(r.Stdio))
	if err != nil {
		return nil, toStatus(err)
	}
	return &api.StartResponse{Pid: uint32(pid)}, nil
}

// WaitProcess answers once the process exited and its output was written.
func (s *Service) WaitProcess(ctx context.Context, r *api.ProcessRequest) (*api.WaitResponse, error) {
	e, err := s.containers.Wait(ctx, r.ContainerId, r.ExecId)
	if err != nil {
		return nil, toStatus(err)
	}
	return &api.WaitResponse{ExitStatus: e.Status, ExitedAtUnixNano: e.At.UnixNano(), OomKilled: e.OOMKilled}, nil
}

// SignalProcess signals a process or, with all, every process of the
// container.
func (s *Service) SignalProcess(ctx context.Context, r *api.SignalRequest) (*api.Empty, error) {
	if r.Signal == 0 || r.Signal > 64 {
		return nil, toStatus(fmt.Errorf("signal %d: %w", r.Signal, errdefs.ErrInvalidArgument))
	}
	err := s.containers.Signal(ctx, r.ContainerId, r.ExecId, syscall.Signal(r.Signal), r.All)
	return &api.Empty{}, toStatus(err)
}

// CloseStdin closes the process's stdin.
func (s *Service) CloseStdin(ctx context.Context, r *api.ProcessRequest) (*api.Empty, error) {
	return &api.Empty{}, toStatus(s.containers.CloseStdin(ctx, r.ContainerId, r.ExecId))
}

// ResizeTTY sets the process's terminal size.
func (s *Service) ResizeTTY(ctx context.Context, r *api.ResizeTTYRequest) (*api.Empty, error) {
	return &api.Empty{}, toStatus(s.containers.Resize(ctx, r.ContainerId, r.ExecId, r.Width, r.Height))
}

// RemoveProcess forgets an exited exec process so its exec id is free.
func (s *Service) RemoveProcess(ctx context.Context, r *api.ProcessRequest) (*api.Empty, error) {
	return &api.Empty{}, toStatus(s.containers.RemoveProcess(ctx, r.ContainerId, r.ExecId))
}

// ListPids lists the guest pids of a container's processes.
func (s *Service) ListPids(ctx context.Context, r *api.ContainerRequest) (*api.ListPidsResponse, error) {
	pids, err := s.containers.Pids(ctx, r.ContainerId)
	if err != nil {
		return nil, toStatus(err)
	}
	out := make([]uint32, len(pids))
	for i, p := range pids {
		out[i] = uint32(p)
	}
	return &api.ListPidsResponse{Pids: out}, nil
}
