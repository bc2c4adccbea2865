package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	// Device rules for cgroup v1 and v2 (eBPF); without it libcontainer
	// refuses every container with device rules.
	_ "github.com/opencontainers/cgroups/devices"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/configs/validate"
	"github.com/opencontainers/runc/libcontainer/seccomp"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/cleanup"
)

const (
	// DefaultStateRoot is where libcontainer keeps container state.
	DefaultStateRoot = "/run/veil/containers"
	// DefaultStreamTimeout bounds how long a process waits for the stream
	// connections it needs.
	DefaultStreamTimeout = 10 * time.Second
	// killTimeout bounds how long a forced removal waits for the
	// container's processes to die.
	killTimeout = 10 * time.Second
)

// Config configures a Manager.
type Config struct {
	// StateRoot is libcontainer's state directory.
	StateRoot string
	// SharedDir is where the host's share is mounted; rootfs paths must
	// lie inside it.
	SharedDir string
	// StreamTimeout bounds the wait for stream connections.
	StreamTimeout time.Duration
	// ProcSys is where the guest's sysctls are written (/proc/sys).
	ProcSys string
}

// Manager runs the guest's containers.
type Manager struct {
	cfg     Config
	streams StreamSource

	mu         sync.Mutex
	containers map[string]*container
}

// NewManager returns a Manager; empty fields of cfg get defaults.
func NewManager(cfg Config, streams StreamSource) *Manager {
	if cfg.StateRoot == "" {
		cfg.StateRoot = DefaultStateRoot
	}
	if cfg.SharedDir == "" {
		cfg.SharedDir = api.SharedDir
	}
	if cfg.ProcSys == "" {
		cfg.ProcSys = "/proc/sys"
	}
	if cfg.StreamTimeout <= 0 {
		cfg.StreamTimeout = DefaultStreamTimeout
	}
	return &Manager{cfg: cfg, streams: streams, containers: map[string]*container{}}
}

// CreateOptions are the guest-side settings of a new container.
type CreateOptions struct {
	// Rootfs is the guest path of the container's root filesystem.
	Rootfs string
	// Stdio says which stream connections the init process gets.
	Stdio Stdio
	// Submounts are guest paths of virtio-fs submounts below the
	// container's volumes, reached before the container is created (see
	// api.CreateContainerRequest.submounts).
	Submounts []string
	// PodContainerID names the pod's sandbox container: namespaces the
	// spec joins by (host) path join that container's instead; empty
	// makes them new namespaces.
	PodContainerID string
	// PodHolder says the container is a CRI pod's sandbox container: the
	// agent keeps the pod's namespaces in a pod holder of its own instead
	// of running the spec's process (holder.go), unless the spec asks for
	// what a holder cannot do. A terminal is refused.
	PodHolder bool
}

// Create creates container id from an OCI spec with its root at
// opts.Rootfs. The init process is prepared (stdio paired) but runs only at
// Start. On failure the init's pending stream connections are closed,
// unless another in-flight Create owns the id.
func (m *Manager) Create(ctx context.Context, id string, specJSON []byte, opts CreateOptions) (retErr error) {
	rootfs, sio := opts.Rootfs, opts.Stdio
	defer m.discardStreamsOnError(&retErr, id, "")
	if err := validateID(id); err != nil {
		return err
	}
	if !within(rootfs, m.cfg.SharedDir) {
		return fmt.Errorf("rootfs %q of container %s is not inside %s: %w", rootfs, id, m.cfg.SharedDir, errdefs.ErrInvalidArgument)
	}
	if fi, err := os.Stat(rootfs); err != nil {
		return fmt.Errorf("rootfs %q of container %s is not a directory (%w): %w", rootfs, id, err, errdefs.ErrInvalidArgument)
	} else if !fi.IsDir() {
		return fmt.Errorf("rootfs %q of container %s is not a directory: %w", rootfs, id, errdefs.ErrInvalidArgument)
	}
	if sio.Terminal && sio.Stderr {
		return fmt.Errorf("container %s: a terminal has no stderr stream: %w", id, errdefs.ErrInvalidArgument)
	}
	if opts.PodHolder && (sio.Terminal || opts.PodContainerID != "") {
		return fmt.Errorf("container %s: a pod's sandbox container has no terminal and joins no other container: %w", id, errdefs.ErrInvalidArgument)
	}
	spec, err := ParseSpec(specJSON)
	if err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	if err := m.reachSubmounts(ctx, opts.Submounts); err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	podNS, err := m.podNamespaces(opts.PodContainerID)
	if err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	rw, err := RewriteSpec(spec, id, RewriteOptions{
		Rootfs:        rootfs,
		SharedDir:     m.cfg.SharedDir,
		PodShmDir:     api.PodShmDir,
		Terminal:      sio.Terminal,
		Seccomp:       seccomp.Enabled,
		PodNamespaces: podNS,
	})
	if err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	if len(rw.Dropped) > 0 {
		log.G(ctx).WithField("container", id).Infof("spec rewritten for the guest, dropped: %v", rw.Dropped)
	}
	if err := applySysctls(ctx, m.cfg.ProcSys, rw.NetSysctls); err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	lp, err := toLibcontainer(spec.Process, true)
	if err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}

	c := &container{id: id, execs: map[string]*process{}, creating: true}
	m.mu.Lock()
	if _, ok := m.containers[id]; ok {
		m.mu.Unlock()
		return fmt.Errorf("container %s: %w", id, errdefs.ErrAlreadyExists)
	}
	// Reserve the id; the entry is usable once init is set.
	m.containers[id] = c
	m.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	defer func() {
		m.mu.Lock()
		if retErr != nil {
			delete(m.containers, id)
		}
		c.creating = false
		m.mu.Unlock()
	}()
	var undo cleanup.Stack
	defer undo.OnError(ctx, &retErr)

	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: id, Spec: spec})
	if err != nil {
		return fmt.Errorf("convert spec of container %s: %w: %w", id, err, errdefs.ErrInvalidArgument)
	}
	b, err := m.newBox(ctx, id, cfg, opts)
	if err != nil {
		return err
	}
	undo.Push("create container "+id, func(context.Context) error { return b.destroy() })

	conns, err := m.takeStreams(ctx, id, "", sio)
	if err != nil {
		return fmt.Errorf("create container %s: %w", id, err)
	}
	c.box = b
	c.init = newProcess("container "+id, lp, newStdio("container "+id, conns, sio.Terminal))
	log.G(ctx).WithFields(log.Fields{"container": id, "rootfs": rootfs, "cgroup": spec.Linux.CgroupsPath}).Info("container created")
	return nil
}

// newBox creates what the container's processes will live in: a pod
// holder for a pod's sandbox container when one can stand in for it,
// else libcontainer's container.
func (m *Manager) newBox(ctx context.Context, id string, cfg *configs.Config, opts CreateOptions) (box, error) {
	if opts.PodHolder {
		if err := validate.Validate(cfg); err != nil {
			return nil, fmt.Errorf("container %s: %w: %w", id, err, errdefs.ErrInvalidArgument)
		}
		flags, err := holderFor(cfg)
		if err == nil {
			return newHolder(id, cfg, flags)
		}
		log.G(ctx).WithError(err).WithField("container", id).Info("the pod's sandbox container runs its own process")
	}
	lc, err := libcontainer.Create(m.cfg.StateRoot, id, cfg)
	if err != nil {
		if errors.Is(err, libcontainer.ErrExist) {
			return nil, fmt.Errorf("container %s: state in %s exists: %w", id, m.cfg.StateRoot, errdefs.ErrAlreadyExists)
		}
		return nil, fmt.Errorf("create container %s: %w", id, err)
	}
	return lcBox{lc}, nil
}

// get returns a container that finished creating.
func (m *Manager) get(id string) (*container, error) {
	m.mu.Lock()
	c, ok := m.containers[id]
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("container %s: %w", id, errdefs.ErrNotFound)
	}
	c.mu.Lock()
	ready := c.init != nil
	c.mu.Unlock()
	if !ready {
		return nil, fmt.Errorf("container %s is being created: %w", id, errdefs.ErrFailedPrecondition)
	}
	return c, nil
}

// proc returns the init (empty execID) or an exec of container id.
func (m *Manager) proc(id, execID string) (*container, *process, error) {
	c, err := m.get(id)
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if execID == "" {
		return c, c.init, nil
	}
	p, ok := c.execs[execID]
	if !ok || p == nil {
		return nil, nil, fmt.Errorf("exec %s in container %s: %w", execID, id, errdefs.ErrNotFound)
	}
	return c, p, nil
}

// Start runs the container's init process and returns its guest pid.
func (m *Manager) Start(ctx context.Context, id string) (int, error) {
	c, err := m.get(id)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.init.isStarted() {
		return 0, fmt.Errorf("container %s already started: %w", id, errdefs.ErrFailedPrecondition)
	}
	if err := c.init.start(context.WithoutCancel(ctx), c.box.start); err != nil {
		return 0, fmt.Errorf("start container %s: %w", id, err)
	}
	log.G(ctx).WithFields(log.Fields{"container": id, "pid": c.init.pid}).Info("container started")
	return c.init.pid, nil
}

// Pids lists the guest pids of the container's processes.
func (m *Manager) Pids(ctx context.Context, id string) ([]int, error) {
	c, err := m.get(id)
	if err != nil {
		return nil, err
	}
	pids, err := c.box.processes()
	if err != nil {
		return nil, fmt.Errorf("list processes of container %s: %w", id, err)
	}
	sort.Ints(pids)
	return pids, nil
}

// podNamespaceTypes are the namespaces a pod's containers share with its
// sandbox container when their specs join them by path. The network is
// the guest's own and the mount namespace is never shared.
var podNamespaceTypes = []specs.LinuxNamespaceType{specs.IPCNamespace, specs.UTSNamespace, specs.PIDNamespace}

// podNamespaces returns the namespace files of the pod container's running
// init, or nil when there is no pod container.
func (m *Manager) podNamespaces(podID string) (map[specs.LinuxNamespaceType]string, error) {
	if podID == "" {
		return nil, nil
	}
	c, err := m.get(podID)
	if err != nil {
		return nil, fmt.Errorf("pod container: %w", err)
	}
	c.mu.Lock()
	running := c.init.isStarted() && !c.init.isExited()
	pid := c.init.pid
	c.mu.Unlock()
	if !running {
		return nil, fmt.Errorf("pod container %s is not running, so its namespaces cannot be joined: %w", podID, errdefs.ErrFailedPrecondition)
	}
	ns := make(map[specs.LinuxNamespaceType]string, len(podNamespaceTypes))
	for _, t := range podNamespaceTypes {
		ns[t] = fmt.Sprintf("/proc/%d/ns/%s", pid, nsFile(t))
	}
	return ns, nil
}

// nsFile is the /proc/<pid>/ns entry of a namespace type.
func nsFile(t specs.LinuxNamespaceType) string {
	switch t {
	case specs.PIDNamespace:
		return "pid"
	case specs.NetworkNamespace:
		return "net"
	case specs.MountNamespace:
		return "mnt"
	default:
		return string(t)
	}
}

// reachSubmounts opens each path, which mounts a virtio-fs submount there
// with the flags of the share (not those of a read-only bind the
// container reaches it through later). An open, unlike stat(2), triggers
// the automount of the last element too. Paths must lie in the share;
// the host lists parents before children.
func (m *Manager) reachSubmounts(ctx context.Context, paths []string) error {
	for _, p := range paths {
		if !within(p, m.cfg.SharedDir) {
			return fmt.Errorf("submount %q is not inside %s: %w", p, m.cfg.SharedDir, errdefs.ErrInvalidArgument)
		}
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err != nil {
			log.G(ctx).WithError(err).WithField("path", p).Warn("submount not reachable")
			continue
		}
		_ = unix.Close(fd)
	}
	return nil
}
