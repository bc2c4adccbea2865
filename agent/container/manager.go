package container

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	// Device rules for cgroup v1 and v2 (eBPF); without it libcontainer
	// refuses every container with device rules.
	_ "github.com/opencontainers/cgroups/devices"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/seccomp"
	"github.com/opencontainers/runc/libcontainer/specconv"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/agent/stream"
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

// StreamSource hands out the stdio connections the host opened.
type StreamSource interface {
	// Take returns the connection for key, waiting until it arrives or
	// ctx ends; the caller owns it.
	Take(ctx context.Context, key stream.Key) (net.Conn, error)
	// Discard closes the waiting connections of process (containerID,
	// execID), or of every process of the container when all is set.
	Discard(containerID, execID string, all bool)
}

// Stdio says which streams a process has.
type Stdio struct {
	Stdin, Stdout, Stderr, Terminal bool
}

// Config configures a Manager.
type Config struct {
	// StateRoot is libcontainer's state directory.
	StateRoot string
	// SharedDir is where the host's share is mounted; rootfs paths must
	// lie inside it.
	SharedDir string
	// StreamTimeout bounds the wait for stream connections.
	StreamTimeout time.Duration
}

// Manager runs the guest's containers.
type Manager struct {
	cfg     Config
	streams StreamSource

	mu         sync.Mutex
	containers map[string]*container
}

// container is one libcontainer container with its processes.
type container struct {
	id string
	lc *libcontainer.Container

	mu    sync.Mutex
	init  *process
	execs map[string]*process
}

// NewManager returns a Manager; empty fields of cfg get defaults.
func NewManager(cfg Config, streams StreamSource) *Manager {
	if cfg.StateRoot == "" {
		cfg.StateRoot = DefaultStateRoot
	}
	if cfg.SharedDir == "" {
		cfg.SharedDir = api.SharedDir
	}
	if cfg.StreamTimeout <= 0 {
		cfg.StreamTimeout = DefaultStreamTimeout
	}
	return &Manager{cfg: cfg, streams: streams, containers: map[string]*container{}}
}

// Create creates container id from an OCI spec with its root at rootfs.
// The init process is prepared (stdio paired) but runs only at Start.
func (m *Manager) Create(ctx context.Context, id string, specJSON []byte, rootfs string, sio Stdio) (retErr error) {
	if err := validateID(id); err != nil {
		return err
	}
	if !within(rootfs, m.cfg.SharedDir) {
		return fmt.Errorf("rootfs %q of container %s is not inside %s: %w", rootfs, id, m.cfg.SharedDir, errdefs.ErrInvalidArgument)
	}
	if fi, err := os.Stat(rootfs); err != nil || !fi.IsDir() {
		return fmt.Errorf("rootfs %q of container %s is not a directory (%v): %w", rootfs, id, err, errdefs.ErrInvalidArgument)
	}
	if sio.Terminal && sio.Stderr {
		return fmt.Errorf("container %s: a terminal has no stderr stream: %w", id, errdefs.ErrInvalidArgument)
	}
	spec, err := ParseSpec(specJSON)
	if err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	rw, err := RewriteSpec(spec, id, RewriteOptions{Rootfs: rootfs, SharedDir: m.cfg.SharedDir, Terminal: sio.Terminal, Seccomp: seccomp.Enabled})
	if err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	if len(rw.Dropped) > 0 {
		log.G(ctx).WithField("container", id).Infof("spec rewritten for the guest, dropped: %v", rw.Dropped)
	}
	lp, err := toLibcontainer(spec.Process, true)
	if err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}

	c := &container{id: id, execs: map[string]*process{}}
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
		if retErr != nil {
			m.mu.Lock()
			delete(m.containers, id)
			m.mu.Unlock()
		}
	}()

	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: id, Spec: spec})
	if err != nil {
		return fmt.Errorf("convert spec of container %s: %w: %w", id, err, errdefs.ErrInvalidArgument)
	}
	lc, err := libcontainer.Create(m.cfg.StateRoot, id, cfg)
	if err != nil {
		if errors.Is(err, libcontainer.ErrExist) {
			return fmt.Errorf("container %s: state in %s exists: %w", id, m.cfg.StateRoot, errdefs.ErrAlreadyExists)
		}
		return fmt.Errorf("create container %s: %w", id, err)
	}
	defer func() {
		if retErr != nil {
			if err := lc.Destroy(); err != nil {
				log.G(ctx).WithError(err).WithField("container", id).Warn("rollback: destroy container")
			}
		}
	}()

	conns, err := m.takeStreams(ctx, id, "", sio)
	if err != nil {
		return fmt.Errorf("create container %s: %w", id, err)
	}
	c.lc = lc
	c.init = newProcess("container "+id, lp, newStdio("container "+id, conns, sio.Terminal))
	log.G(ctx).WithFields(log.Fields{"container": id, "rootfs": rootfs, "cgroup": spec.Linux.CgroupsPath}).Info("container created")
	return nil
}

// takeStreams waits (bounded) for every stream sio names; on failure the
// ones taken are closed and the rest discarded.
func (m *Manager) takeStreams(ctx context.Context, id, execID string, sio Stdio) (_ streams, retErr error) {
	var s streams
	ctx, cancel := context.WithTimeoutCause(ctx, m.cfg.StreamTimeout, fmt.Errorf("no connection within %s", m.cfg.StreamTimeout))
	defer cancel()
	defer func() {
		if retErr != nil {
			s.closeAll()
			m.streams.Discard(id, execID, false)
		}
	}()
	want := []struct {
		on   bool
		name api.Stream
		dst  *net.Conn
	}{
		{sio.Stdin, api.StreamStdin, &s.stdin},
		{sio.Stdout, api.StreamStdout, &s.stdout},
		{sio.Stderr, api.StreamStderr, &s.stderr},
	}
	for _, w := range want {
		if !w.on {
			continue
		}
		conn, err := m.streams.Take(ctx, stream.Key{ContainerID: id, ExecID: execID, Stream: w.name})
		if err != nil {
			return s, err
		}
		*w.dst = conn
	}
	return s, nil
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
	if err := c.init.start(context.WithoutCancel(ctx), c.lc.Run); err != nil {
		return 0, fmt.Errorf("start container %s: %w", id, err)
	}
	log.G(ctx).WithFields(log.Fields{"container": id, "pid": c.init.pid}).Info("container started")
	return c.init.pid, nil
}

// Exec starts an extra process in a running container and returns its
// guest pid.
func (m *Manager) Exec(ctx context.Context, id, execID string, procJSON []byte, sio Stdio) (_ int, retErr error) {
	if execID == "" {
		return 0, fmt.Errorf("exec in container %s: empty exec id: %w", id, errdefs.ErrInvalidArgument)
	}
	if sio.Terminal && sio.Stderr {
		return 0, fmt.Errorf("exec %s: a terminal has no stderr stream: %w", execID, errdefs.ErrInvalidArgument)
	}
	spec, err := ParseProcess(procJSON)
	if err != nil {
		return 0, fmt.Errorf("exec %s in container %s: %w", execID, id, err)
	}
	spec.Terminal = sio.Terminal
	lp, err := toLibcontainer(spec, false)
	if err != nil {
		return 0, fmt.Errorf("exec %s in container %s: %w", execID, id, err)
	}
	c, err := m.get(id)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	if !c.init.isStarted() || c.init.isExited() {
		c.mu.Unlock()
		return 0, fmt.Errorf("exec %s: container %s is not running: %w", execID, id, errdefs.ErrFailedPrecondition)
	}
	if old, ok := c.execs[execID]; ok && (old == nil || !old.isExited()) {
		c.mu.Unlock()
		return 0, fmt.Errorf("exec %s in container %s: %w", execID, id, errdefs.ErrAlreadyExists)
	}
	c.execs[execID] = nil // reserved
	c.mu.Unlock()
	defer func() {
		if retErr != nil {
			c.mu.Lock()
			delete(c.execs, execID)
			c.mu.Unlock()
		}
	}()

	conns, err := m.takeStreams(ctx, id, execID, sio)
	if err != nil {
		return 0, fmt.Errorf("exec %s in container %s: %w", execID, id, err)
	}
	name := fmt.Sprintf("exec %s in container %s", execID, id)
	p := newProcess(name, lp, newStdio(name, conns, sio.Terminal))
	if err := p.start(context.WithoutCancel(ctx), c.lc.Run); err != nil {
		return 0, fmt.Errorf("start %s: %w", name, err)
	}
	c.mu.Lock()
	c.execs[execID] = p
	c.mu.Unlock()
	log.G(ctx).WithFields(log.Fields{"container": id, "exec": execID, "pid": p.pid}).Info("exec started")
	return p.pid, nil
}

// Wait blocks until the process exited and its output was delivered.
func (m *Manager) Wait(ctx context.Context, id, execID string) (Exit, error) {
	_, p, err := m.proc(id, execID)
	if err != nil {
		return Exit{}, err
	}
	return p.waitDone(ctx)
}

// Signal delivers sig to a process, or with all to every process of the
// container.
func (m *Manager) Signal(ctx context.Context, id, execID string, sig syscall.Signal, all bool) error {
	c, p, err := m.proc(id, execID)
	if err != nil {
		return err
	}
	if all {
		return c.signalAll(sig)
	}
	if execID == "" && p.isStarted() && !p.isExited() {
		if err := c.lc.Signal(sig); err != nil {
			if errors.Is(err, libcontainer.ErrNotRunning) {
				return fmt.Errorf("container %s: %w: %w", id, err, errdefs.ErrNotFound)
			}
			return fmt.Errorf("signal container %s with %v: %w", id, sig, err)
		}
		return nil
	}
	return p.signal(sig)
}

// signalAll signals every process in the container's cgroup.
func (c *container) signalAll(sig syscall.Signal) error {
	pids, err := c.lc.Processes()
	if err != nil {
		return fmt.Errorf("list processes of container %s: %w", c.id, err)
	}
	if len(pids) == 0 {
		return fmt.Errorf("container %s has no processes: %w", c.id, errdefs.ErrNotFound)
	}
	var errs []error
	for _, pid := range pids {
		if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("signal pid %d of container %s: %w", pid, c.id, err))
		}
	}
	return errors.Join(errs...)
}

// CloseStdin closes a process's standard input.
func (m *Manager) CloseStdin(ctx context.Context, id, execID string) error {
	_, p, err := m.proc(id, execID)
	if err != nil {
		return err
	}
	p.io.closeStdin()
	return nil
}

// Resize sets the window size of a process's terminal.
func (m *Manager) Resize(ctx context.Context, id, execID string, width, height uint32) error {
	_, p, err := m.proc(id, execID)
	if err != nil {
		return err
	}
	if !p.io.terminal {
		return fmt.Errorf("%s has no terminal: %w", p.name, errdefs.ErrFailedPrecondition)
	}
	if !p.isStarted() {
		return fmt.Errorf("%s was not started: %w", p.name, errdefs.ErrFailedPrecondition)
	}
	if err := p.io.resize(width, height); err != nil {
		return fmt.Errorf("resize terminal of %s: %w", p.name, err)
	}
	return nil
}

// Pids lists the guest pids of the container's processes.
func (m *Manager) Pids(ctx context.Context, id string) ([]int, error) {
	c, err := m.get(id)
	if err != nil {
		return nil, err
	}
	pids, err := c.lc.Processes()
	if err != nil {
		return nil, fmt.Errorf("list processes of container %s: %w", id, err)
	}
	sort.Ints(pids)
	return pids, nil
}

// Remove destroys a container. A running one is refused unless force,
// which kills its processes first.
func (m *Manager) Remove(ctx context.Context, id string, force bool) error {
	c, err := m.get(id)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	running := c.init.isStarted() && !c.init.isExited()
	if running && !force {
		return fmt.Errorf("container %s is running: %w", id, errdefs.ErrFailedPrecondition)
	}
	if running || force {
		if err := c.kill(ctx); err != nil {
			return err
		}
	}
	if err := c.lc.Destroy(); err != nil {
		return fmt.Errorf("destroy container %s: %w", id, err)
	}
	c.init.discard()
	m.streams.Discard(id, "", true)
	m.mu.Lock()
	delete(m.containers, id)
	m.mu.Unlock()
	log.G(ctx).WithField("container", id).Info("container removed")
	return nil
}

// kill SIGKILLs every process of the container and waits (bounded) until
// the init and all execs were reaped. Called with c.mu held.
func (c *container) kill(ctx context.Context) error {
	if st, err := c.lc.Status(); err == nil && st == libcontainer.Paused {
		_ = c.lc.Resume()
	}
	if err := c.signalAll(syscall.SIGKILL); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		log.G(ctx).WithError(err).WithField("container", c.id).Warn("kill processes")
	}
	ctx, cancel := context.WithTimeout(ctx, killTimeout)
	defer cancel()
	procs := []*process{c.init}
	for _, p := range c.execs {
		if p != nil {
			procs = append(procs, p)
		}
	}
	for _, p := range procs {
		if !p.isStarted() {
			continue
		}
		select {
		case <-p.exited:
		case <-ctx.Done():
			return fmt.Errorf("container %s: %s (pid %d) did not die within %s after SIGKILL: %w", c.id, p.name, p.pid, killTimeout, errdefs.ErrUnavailable)
		}
	}
	return nil
}

// RemoveAll force-removes every container.
func (m *Manager) RemoveAll(ctx context.Context) error {
	m.mu.Lock()
	ids := make([]string, 0, len(m.containers))
	for id := range m.containers {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	var errs []error
	for _, id := range ids {
		if err := m.Remove(ctx, id, true); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// validateID accepts what libcontainer accepts: letters, digits, _ + - .
func validateID(id string) error {
	if id == "" || id == "." || id == ".." || filepath.Base(id) != id {
		return fmt.Errorf("container id %q: %w", id, errdefs.ErrInvalidArgument)
	}
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '+' || r == '-' || r == '.'
		if !ok {
			return fmt.Errorf("container id %q: only letters, digits and _+-. are allowed: %w", id, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}
