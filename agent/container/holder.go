package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/cgroups"
	cgmanager "github.com/opencontainers/cgroups/manager"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"golang.org/x/sys/unix"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A pod holder stands in for a CRI pod's sandbox (pause) container: the
// agent starts itself again (HolderEnv) in the pod's new IPC, UTS and PID
// namespaces, in the container's cgroup, and that process sets the pod's
// hostname and IPC sysctls, shuts itself into an empty read-only root,
// drops to holderUID with no capabilities and then only reaps orphans
// and waits, as pause does. The pod's containers join its namespaces.
// It runs nothing of the sandbox image, which spares the pod runc's whole
// container start in the guest (about 0.3 s under TCG).

// HolderEnv marks the agent's re-execution as a pod holder; its value is
// the file descriptor of the setup socket.
const HolderEnv = "_VEIL_POD_HOLDER"

const (
	// holderName is the holder's argv[0], what ps shows in the pod.
	holderName = "veil-pod-holder"
	// holderUID and holderGID are who the holder runs as, the user the
	// pause image runs as.
	holderUID = 65535
	holderGID = 65535
	// holderSetupTimeout bounds the holder's start and setup.
	holderSetupTimeout = 20 * time.Second
	// holderMsgMax bounds a setup message either way.
	holderMsgMax = 64 << 10
	// holderSetupFD is the setup socket's descriptor in the holder.
	holderSetupFD = 3
)

// holderSetup is what the agent tells a starting holder.
type holderSetup struct {
	Hostname    string            `json:"hostname,omitempty"`
	Domainname  string            `json:"domainname,omitempty"`
	Sysctl      map[string]string `json:"sysctl,omitempty"`
	OOMScoreAdj *int              `json:"oom_score_adj,omitempty"`
}

// holder is a pod's sandbox container kept by a pod holder process.
type holder struct {
	id    string
	cg    cgroups.Manager
	flags uintptr // the namespaces it makes
	setup holderSetup
	// proc is the running holder; nil before start.
	proc *os.Process
}

// holderNamespaces are the namespaces a holder can make for a pod; it
// always gets a mount namespace of its own too.
var holderNamespaces = map[configs.NamespaceType]uintptr{
	configs.NEWIPC: unix.CLONE_NEWIPC,
	configs.NEWUTS: unix.CLONE_NEWUTS,
	configs.NEWPID: unix.CLONE_NEWPID,
	configs.NEWNS:  unix.CLONE_NEWNS,
	// The cgroup namespace RewriteSpec adds is of no use to a process
	// that reads no cgroup files.
	configs.NEWCGROUP: 0,
}

// holderFor returns the namespaces a holder would make for cfg, or why a
// holder cannot stand in for it (a namespace it would have to join or
// cannot make, such as a user namespace): the container then runs its
// process through libcontainer.
func holderFor(cfg *configs.Config) (uintptr, error) {
	if holderArch == 0 {
		return 0, errors.New("a pod holder has no seccomp filter on this architecture")
	}
	flags := uintptr(unix.CLONE_NEWNS)
	for _, ns := range cfg.Namespaces {
		f, ok := holderNamespaces[ns.Type]
		if !ok {
			return 0, fmt.Errorf("a pod holder cannot make a %s namespace", ns.Type)
		}
		if ns.Path != "" {
			return 0, fmt.Errorf("a pod holder makes its namespaces; the spec joins %s at %s", ns.Type, ns.Path)
		}
		flags |= f
	}
	if cfg.Cgroups == nil || cfg.Cgroups.Resources == nil {
		return 0, errors.New("the spec has no cgroup")
	}
	return flags, nil
}

// newHolder creates the holder's cgroup; the holder runs at start.
func newHolder(id string, cfg *configs.Config, flags uintptr) (*holder, error) {
	// No device rules on cgroup v2 (the guest's): the holder opens no
	// device (its root is empty and it has no capabilities), and loading
	// the eBPF program that enforces them is most of a cgroup's creation
	// under TCG. (cgroup v1 managers find a cgroup's processes through
	// its devices hierarchy, so there the rules stay.)
	cfg.Cgroups.SkipDevices = cgroups.IsCgroup2UnifiedMode()
	cg, err := cgmanager.New(cfg.Cgroups)
	if err != nil {
		return nil, fmt.Errorf("cgroup of container %s: %w", id, err)
	}
	if err := cg.Apply(-1); err != nil {
		return nil, fmt.Errorf("create cgroup of container %s: %w", id, err)
	}
	if err := cg.Set(cfg.Cgroups.Resources); err != nil {
		_ = cg.Destroy()
		return nil, fmt.Errorf("set cgroup of container %s: %w", id, err)
	}
	return &holder{
		id:    id,
		cg:    cg,
		flags: flags,
		setup: holderSetup{Hostname: cfg.Hostname, Domainname: cfg.Domainname, Sysctl: cfg.Sysctl, OOMScoreAdj: cfg.OomScoreAdj},
	}, nil
}

// start runs the holder with lp's stdio, puts it in the cgroup and waits
// until it reported its setup done.
func (h *holder) start(lp *libcontainer.Process) (_ running, retErr error) {
	if h.proc != nil {
		return nil, fmt.Errorf("pod holder of %s started already: %w", h.id, errdefs.ErrFailedPrecondition)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("setup socket of the pod holder: %w", err)
	}
	parent, child := os.NewFile(uintptr(fds[0]), "holder-setup"), os.NewFile(uintptr(fds[1]), "holder-setup")
	defer func() { _ = parent.Close() }()
	sys := &syscall.SysProcAttr{Cloneflags: h.flags, Setsid: true}
	// On cgroup v2 (the guest's) the holder starts in its cgroup
	// (CLONE_INTO_CGROUP), so none of its start is charged elsewhere; on
	// v1 it is moved there before it is sent its setup.
	if cgroups.IsCgroup2UnifiedMode() {
		dir, err := os.Open(h.cg.Path(""))
		if err != nil {
			_ = child.Close()
			return nil, fmt.Errorf("cgroup of the pod holder of %s: %w", h.id, err)
		}
		defer func() { _ = dir.Close() }()
		sys.UseCgroupFD, sys.CgroupFD = true, int(dir.Fd())
	}
	files, closeFiles, err := holderStdio(lp)
	if err != nil {
		_ = child.Close()
		return nil, err
	}
	p, err := os.StartProcess("/proc/self/exe", []string{holderName}, &os.ProcAttr{
		Env:   []string{fmt.Sprintf("%s=%d", HolderEnv, holderSetupFD), "GOMAXPROCS=1", "GODEBUG=", "PATH=/"},
		Files: append(files, child),
		Sys:   sys,
	})
	_ = child.Close()
	closeFiles()
	if err != nil {
		return nil, fmt.Errorf("start the pod holder of %s: %w", h.id, err)
	}
	defer func() {
		if retErr != nil {
			_ = p.Kill()
			_, _ = p.Wait()
		}
	}()
	if !sys.UseCgroupFD {
		if err := h.cg.Apply(p.Pid); err != nil {
			return nil, fmt.Errorf("move the pod holder of %s into its cgroup: %w", h.id, err)
		}
	}
	msg, err := json.Marshal(h.setup)
	if err != nil {
		return nil, err
	}
	if len(msg) > holderMsgMax {
		return nil, fmt.Errorf("pod holder setup of %s is %d bytes, more than %d: %w", h.id, len(msg), holderMsgMax, errdefs.ErrInvalidArgument)
	}
	if _, err := parent.Write(msg); err != nil {
		return nil, fmt.Errorf("send the pod holder of %s its setup: %w", h.id, err)
	}
	if err := awaitHolder(parent); err != nil {
		return nil, fmt.Errorf("pod holder of %s: %w", h.id, err)
	}
	h.proc = p
	return holderProc{p}, nil
}

// awaitHolder reads the holder's answer: empty when its setup is done, or
// what failed.
func awaitHolder(sock *os.File) error {
	pfd := []unix.PollFd{{Fd: int32(sock.Fd()), Events: unix.POLLIN}}
	deadline := time.Now().Add(holderSetupTimeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("no setup answer within %s: %w", holderSetupTimeout, errdefs.ErrUnavailable)
		}
		n, err := unix.Poll(pfd, int(left.Milliseconds())+1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait for its setup: %w", err)
		}
		if n > 0 {
			break
		}
	}
	buf := make([]byte, 4096)
	n, err := sock.Read(buf)
	switch {
	case errors.Is(err, io.EOF) || (err == nil && n == 0):
		return errors.New("it exited before it finished its setup")
	case err != nil:
		return fmt.Errorf("read its setup answer: %w", err)
	case string(buf[:n]) == holderOK:
		return nil
	default:
		return fmt.Errorf("setup failed: %s", buf[:n])
	}
}

// holderOK is the holder's answer when its setup is done.
const holderOK = "ok"

// holderStdio is the holder's stdin, stdout and stderr: lp's pipes, or
// /dev/null for a stream the process does not get.
func holderStdio(lp *libcontainer.Process) ([]*os.File, func(), error) {
	var opened []*os.File
	closeAll := func() {
		for _, f := range opened {
			_ = f.Close()
		}
	}
	files := make([]*os.File, 3)
	for i, s := range []any{lp.Stdin, lp.Stdout, lp.Stderr} {
		if f, ok := s.(*os.File); ok && f != nil {
			files[i] = f
			continue
		}
		f, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("open %s for the pod holder: %w", os.DevNull, err)
		}
		opened = append(opened, f)
		files[i] = f
	}
	return files, closeAll, nil
}

func (h *holder) signal(sig os.Signal) error {
	if h.proc == nil {
		return fmt.Errorf("pod holder of %s is not running: %w", h.id, errdefs.ErrNotFound)
	}
	if err := h.proc.Signal(sig); err != nil {
		if errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("pod holder of %s: %w: %w", h.id, err, errdefs.ErrNotFound)
		}
		return err
	}
	return nil
}

func (h *holder) processes() ([]int, error) {
	pids, err := h.cg.GetAllPids()
	if err != nil && errors.Is(err, os.ErrNotExist) && !h.cg.Exists() {
		return nil, nil
	}
	sort.Ints(pids)
	return pids, err
}

func (h *holder) pause() error {
	if h.paused() {
		return nil
	}
	return h.cg.Freeze(cgroups.Frozen)
}

func (h *holder) resume() error {
	if !h.paused() {
		return fmt.Errorf("pod holder of %s is not paused: %w", h.id, errdefs.ErrFailedPrecondition)
	}
	return h.cg.Freeze(cgroups.Thawed)
}

func (h *holder) paused() bool {
	st, err := h.cg.GetFreezerState()
	return err == nil && st == cgroups.Frozen
}

func (h *holder) cgroupPath() string { return h.cg.GetPaths()[""] }

func (h *holder) update(r *specs.LinuxResources) error {
	cg, err := h.cg.GetCgroups()
	if err != nil || cg.Resources == nil {
		return fmt.Errorf("it has no cgroup: %w", errdefs.ErrFailedPrecondition)
	}
	res := *cg.Resources
	applyResources(&res, r)
	return h.cg.Set(&res)
}

// destroy removes the cgroup: the caller killed and reaped the holder and
// every process that joined its cgroup.
func (h *holder) destroy() error {
	if err := h.cg.Destroy(); err != nil {
		return fmt.Errorf("remove cgroup of container %s: %w", h.id, err)
	}
	return nil
}

// holderProc is a running holder.
type holderProc struct{ p *os.Process }

func (h holderProc) Pid() (int, error)               { return h.p.Pid, nil }
func (h holderProc) Signal(sig os.Signal) error      { return h.p.Signal(sig) }
func (h holderProc) Wait() (*os.ProcessState, error) { return h.p.Wait() }
