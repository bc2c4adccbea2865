package manager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	cshim "github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/cleanup"
	"github.com/veil-runtime/veil/runtime/version"
	"github.com/veil-runtime/veil/shim/bundle"
)

// RuntimeName is the containerd runtime type this shim implements.
const RuntimeName = "io.containerd.veil.v2"

// SandboxCleaner removes what a dead shim left of a sandbox.
type SandboxCleaner interface {
	// Cleanup removes whatever is left of sandbox id (processes, state
	// dir); it is idempotent.
	Cleanup(ctx context.Context, id string) error
}

// CleanerFor returns the cleaner of sandboxes started with the config
// file configPath (a container's runtime option ConfigPath, recorded in
// its bundle; empty for the shim's own config).
type CleanerFor func(configPath string) (SandboxCleaner, error)

// Manager implements the shim binary's actions (containerd's
// shim.Manager): `start` (spawn or reuse the long-lived shim of the pod)
// and `delete` (clean up after a dead one).
type Manager struct {
	// cleanerFor is called on demand: the delete action needs the config
	// only to find a dead sandbox's state.
	cleanerFor CleanerFor
}

// New returns the shim's manager.
func New(cleanerFor CleanerFor) *Manager {
	return &Manager{cleanerFor: cleanerFor}
}

// Name is the runtime type.
func (m *Manager) Name() string { return RuntimeName }

// Start runs in the bundle directory. It spawns the long-lived shim
// serving the pod of the container (one per sandbox, so the socket address
// derives from the sandbox id) or returns the address of the one already
// serving it.
func (m *Manager) Start(ctx context.Context, params *bootapi.BootstrapParams) (_ *bootapi.BootstrapResult, retErr error) {
	id := params.GetInstanceID()
	cwd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("shim start: %w", err)
	}
	bs, err := bundle.ReadSpec(cwd)
	if err != nil {
		return nil, fmt.Errorf("shim start for %s: %w", id, err)
	}
	group, err := bundle.SandboxIDFor(id, bs.Spec.Annotations)
	if err != nil {
		return nil, fmt.Errorf("shim start for %s: %w", id, err)
	}

	socketDir := params.GetSocketDir()
	if socketDir == "" {
		socketDir = filepath.Join(defaults.DefaultStateDir, "s")
	}
	address, err := cshim.CreateSocketAddress(ctx, socketDir, params.GetContainerdGrpcAddress(), group, false)
	if err != nil {
		return nil, fmt.Errorf("shim socket address for %s: %w", group, err)
	}
	result := &bootapi.BootstrapResult{Version: 3, Protocol: "ttrpc", Address: address}

	listener, err := cshim.NewSocket(address)
	if err != nil {
		if !cshim.SocketEaddrinuse(err) {
			return nil, fmt.Errorf("create shim socket %s: %w", address, err)
		}
		if cshim.CanConnect(address) {
			// The pod's shim is running: the container joins it.
			return result, nil
		}
		// A dead shim left its socket behind.
		if err := cshim.RemoveSocket(address); err != nil {
			return nil, fmt.Errorf("remove stale shim socket %s: %w", address, err)
		}
		if listener, err = cshim.NewSocket(address); err != nil {
			return nil, fmt.Errorf("create shim socket %s: %w", address, err)
		}
	}
	// The socket file outlives this process: the long-lived shim serves it.
	listener.SetUnlinkOnClose(false)
	var undo cleanup.Stack
	defer undo.OnError(ctx, &retErr)
	undo.Push("shim socket "+address, func(context.Context) error {
		_ = listener.Close()
		_ = cshim.RemoveSocket(address)
		return nil
	})
	sockFile, err := listener.File()
	if err != nil {
		return nil, fmt.Errorf("shim socket fd: %w", err)
	}
	defer func() { _ = sockFile.Close() }()

	cmd, err := serveCommand(ctx, id, params, cwd)
	if err != nil {
		return nil, err
	}
	cmd.ExtraFiles = []*os.File{sockFile} // fd 3: the listening socket
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("spawn shim %s: %w", cmd.Path, err)
	}
	undo.Push("spawned shim", func(context.Context) error {
		_ = cmd.Process.Kill()
		return nil
	})
	go func() { _ = cmd.Wait() }()
	if err := cshim.AdjustOOMScore(cmd.Process.Pid); err != nil {
		return nil, fmt.Errorf("adjust shim oom score: %w", err)
	}
	_ = listener.Close() // the child holds its own copy
	return result, nil
}

// serveCommand is the long-lived shim: this binary without an action.
func serveCommand(ctx context.Context, id string, params *bootapi.BootstrapParams, dir string) (*exec.Cmd, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find shim binary: %w", err)
	}
	args := []string{"-namespace", ns, "-id", id, "-address", params.GetContainerdGrpcAddress()}
	if params.GetLogLevel() <= bootapi.LogLevel_LOG_LEVEL_DEBUG {
		args = append(args, "-debug")
	}
	cmd := exec.Command(self, args...)
	cmd.Dir = dir
	cmd.Env = os.Environ()
	// Its own process group: signals to containerd's group do not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd, nil
}

// Stop is the `delete` action, run when the shim died (or containerd let
// go of one container of a pod): unless the pod's shim is still alive, it
// unmounts the container's rootfs and removes whatever is left of its
// sandbox.
func (m *Manager) Stop(ctx context.Context, id string) (cshim.StopStatus, error) {
	status := cshim.StopStatus{ExitStatus: 128 + int(unix.SIGKILL), ExitedAt: time.Now()}
	dir := ""
	if opts, ok := ctx.Value(cshim.OptsKey{}).(cshim.Opts); ok {
		dir = opts.BundlePath
	}
	if dir == "" {
		cwd, err := os.Getwd()
		if err != nil {
			return status, fmt.Errorf("shim delete %s: %w", id, err)
		}
		dir = cwd
	}
	st, err := cleanupState(dir, id)
	if err != nil {
		return status, err
	}
	cleaner, err := m.cleanerFor(st.ConfigPath)
	if err != nil {
		return status, fmt.Errorf("shim delete %s: %w", id, err)
	}
	// containerd also runs `delete` when it drops its connection for one
	// container of a pod whose shim lives on: that shim still serves the
	// sandbox and the pod's other containers, and owns their cleanup.
	if addr := bundle.ShimAddress(dir); (addr != "" && cshim.CanConnect(addr)) || bundle.IsShimProcess(st.ShimPid, st.ShimStartTime) {
		log.G(ctx).WithFields(log.Fields{"container": id, "sandbox": st.SandboxID}).Info("shim delete: the pod's shim is alive; leaving the sandbox to it")
		return status, nil
	}
	// The container's mounts lived in the sandbox's virtiofsd mount
	// namespace only; Cleanup kills virtiofsd, and they go with it.
	if err := cleaner.Cleanup(ctx, st.SandboxID); err != nil {
		return status, fmt.Errorf("shim delete %s: clean up sandbox %s: %w", id, st.SandboxID, err)
	}
	return status, nil
}

// cleanupState finds what a dead shim left for container id in the
// bundle at dir: its record, else what the bundle's spec and the id say.
// Ids that would lead outside the state dir are refused.
func cleanupState(dir, id string) (bundle.ShimState, error) {
	if err := api.ValidateID("container id", id); err != nil {
		return bundle.ShimState{}, fmt.Errorf("shim delete: %w", err)
	}
	st, err := bundle.ReadShimState(dir)
	if err == nil {
		if err := api.ValidateID("recorded sandbox id", st.SandboxID); err != nil {
			return bundle.ShimState{}, fmt.Errorf("shim delete %s: %w", id, err)
		}
		return st, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return st, err
	}
	var annotations map[string]string
	if bs, err := bundle.ReadSpec(dir); err == nil {
		annotations = bs.Spec.Annotations
	}
	group, err := bundle.SandboxIDFor(id, annotations)
	if err != nil {
		return bundle.ShimState{}, fmt.Errorf("shim delete %s: %w", id, err)
	}
	return bundle.ShimState{SandboxID: group}, nil
}

// Info describes the runtime.
func (m *Manager) Info(ctx context.Context, optionsR io.Reader) (*types.RuntimeInfo, error) {
	feats, err := runtimeFeaturesAny()
	if err != nil {
		return nil, err
	}
	return &types.RuntimeInfo{
		Name:     RuntimeName,
		Version:  &types.RuntimeVersion{Version: version.Version},
		Features: feats,
	}, nil
}
