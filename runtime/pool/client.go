package pool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/proc"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// ErrUnavailable is a claim that found no VM to give: no daemon, an
// empty pool, or a pool of another configuration. The pod starts cold;
// nothing was changed.
var ErrUnavailable = errors.New("no warm VM")

// keeperReleaseTimeout bounds the wait for a released keeper before it
// is killed.
const keeperReleaseTimeout = 30 * time.Second

// Claimed is a VM the caller now owns: its directory, named by the
// claiming sandbox id, and its keeper.
type Claimed struct {
	Dir    statedir.Dir
	Keeper *Keeper
}

// Claim asks the pool daemon of cfg for a VM with nics network
// interfaces for sandbox id, within
// pool.claim_timeout. An error wrapping ErrUnavailable changed nothing;
// one wrapping errdefs.ErrAlreadyExists says <state_dir>/<id> exists
// (not the pool's doing); after any other error <state_dir>/<id> may link
// to the VM the daemon was giving, which the sandbox's cleanup removes.
func Claim(ctx context.Context, cfg *config.Config, id string, nics int) (*Claimed, error) {
	key, err := Key(cfg, nics)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Pool.ClaimTimeout.Duration)
	defer cancel()
	c, err := dial(ctx, cfg.Pool.Socket)
	if err != nil {
		return nil, err
	}
	defer func() { _ = c.Close() }()
	deadline, _ := ctx.Deadline()
	if err := peerIsOwn(c); err != nil {
		return nil, fmt.Errorf("%w: pool socket %s: %w", ErrUnavailable, cfg.Pool.Socket, err)
	}
	if err := send(c, request{Op: "claim", Key: key, ID: id, Deadline: deadline.UnixNano()}, nil, deadline); err != nil {
		return nil, fmt.Errorf("%w: pool daemon at %s: %w", ErrUnavailable, cfg.Pool.Socket, err)
	}
	var r reply
	files, err := receive(c, &r, deadline)
	if err != nil {
		return nil, fmt.Errorf("pool daemon at %s: claim: %w", cfg.Pool.Socket, err)
	}
	defer closeFiles(files)
	switch {
	case r.Reason == reasonExists:
		return nil, fmt.Errorf("pool daemon at %s: %s: %w", cfg.Pool.Socket, r.Error, errdefs.ErrAlreadyExists)
	case r.Reason != "":
		return nil, fmt.Errorf("%w: pool %s", ErrUnavailable, r.Reason)
	case r.Error != "" || len(files) != 2:
		return nil, fmt.Errorf("pool daemon at %s: claim: %s (%d descriptors)", cfg.Pool.Socket, r.Error, len(files))
	}
	dir, err := statedir.NewPool(cfg.StateDir, r.VM)
	if err != nil {
		return nil, err
	}
	k, err := adoptKeeper(dir, files[0], files[1])
	if err != nil {
		return nil, err
	}
	if dir, err = dir.Claimed(id); err != nil {
		_ = k.Release(context.WithoutCancel(ctx))
		return nil, err
	}
	return &Claimed{Dir: dir, Keeper: k}, nil
}

// dial connects to the daemon; no daemon is ErrUnavailable.
func dial(ctx context.Context, socket string) (*net.UnixConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w: no pool daemon at %s", ErrUnavailable, socket)
		}
		return nil, fmt.Errorf("%w: pool daemon at %s: %w", ErrUnavailable, socket, err)
	}
	return c.(*net.UnixConn), nil
}

// List asks the daemon of cfg for its VMs.
func List(ctx context.Context, cfg *config.Config) (Status, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	c, err := dial(ctx, cfg.Pool.Socket)
	if err != nil {
		return Status{}, err
	}
	defer func() { _ = c.Close() }()
	deadline, _ := ctx.Deadline()
	if err := send(c, request{Op: "list"}, nil, deadline); err != nil {
		return Status{}, err
	}
	var r reply
	files, err := receive(c, &r, deadline)
	closeFiles(files)
	if err != nil {
		return Status{}, fmt.Errorf("pool daemon at %s: %w", cfg.Pool.Socket, err)
	}
	if r.Error != "" {
		return Status{}, fmt.Errorf("pool daemon at %s: %s", cfg.Pool.Socket, r.Error)
	}
	return Status{Size: r.Size, Key: r.PoolKey, VMs: r.VMs, Failures: r.Failures, LastError: r.LastError}, nil
}

// Status is the pool as its daemon reports it.
type Status struct {
	// Size is pool.size; Key the pool's Key.
	Size int    `json:"size"`
	Key  string `json:"key"`
	// VMs are booting or ready, oldest first.
	VMs []VM `json:"vms"`
	// Failures counts VMs that failed to boot; LastError is the last.
	Failures  int    `json:"failures"`
	LastError string `json:"last_error,omitempty"`
}

// Keeper is a claimed VM's keeper as its claimant holds it: the owner
// connection (the keeper ends the VM's processes when it closes) and a
// pidfd the daemon opened when it started the keeper, so that its pid is
// never taken for another process's.
type Keeper struct {
	pid   int
	pidfd *os.File
	conn  *net.UnixConn
}

// adoptKeeper holds the keeper of the pool VM in dir from the owner
// connection and pidfd the daemon passed: the pidfd's process must be
// alive and its command line name the VM's directory.
func adoptKeeper(dir statedir.Dir, owner, pidfd *os.File) (*Keeper, error) {
	pid, err := pidfdPid(pidfd)
	if err != nil {
		return nil, fmt.Errorf("keeper of pool VM %s: %w", dir.PoolID(), err)
	}
	conn, err := unixConn(owner)
	if err != nil {
		return nil, fmt.Errorf("keeper of pool VM %s: owner connection: %w", dir.PoolID(), err)
	}
	fd, err := unix.Dup(int(pidfd.Fd()))
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	k := &Keeper{pid: pid, pidfd: os.NewFile(uintptr(fd), "keeper-pidfd"), conn: conn}
	if !proc.OwnerOf(dir.Path(), "").Owns(pid) || k.Alive() != nil {
		_ = conn.Close()
		_ = k.pidfd.Close()
		return nil, fmt.Errorf("pid %d is not the live keeper of pool VM %s", pid, dir.PoolID())
	}
	return k, nil
}

// pidfdPid reads the pid a pidfd refers to (/proc/self/fdinfo).
func pidfdPid(pidfd *os.File) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", pidfd.Fd()))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Pid:"); ok {
			pid, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || pid <= 0 {
				return 0, fmt.Errorf("not a live process's pidfd (Pid: %q)", strings.TrimSpace(v))
			}
			return pid, nil
		}
	}
	return 0, errors.New("not a pidfd")
}

// Alive fails once the keeper exited: a pid read or written before
// surely was the keeper's while this says it lives.
func (k *Keeper) Alive() error {
	if err := unix.PidfdSendSignal(int(k.pidfd.Fd()), 0, nil, 0); err != nil {
		return fmt.Errorf("keeper pid %d: %w", k.pid, err)
	}
	return nil
}

// NetNS opens the keeper's network namespace, where its VM's NICs wait.
func (k *Keeper) NetNS() (*os.File, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", k.pid))
	if err != nil {
		return nil, fmt.Errorf("keeper pid %d: network namespace: %w", k.pid, err)
	}
	if err := k.Alive(); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

// Pid is the keeper's pid.
func (k *Keeper) Pid() int { return k.pid }

// Release closes the owner connection and waits for the keeper to exit
// (it ends what is left of the VM's processes first); past ctx or
// keeperReleaseTimeout it is killed, which kills them too.
func (k *Keeper) Release(ctx context.Context) error {
	if k.conn == nil {
		return nil
	}
	_ = k.conn.Close()
	k.conn = nil
	defer func() { _ = k.pidfd.Close() }()
	pidfd := int(k.pidfd.Fd())
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), keeperReleaseTimeout)
	defer cancel()
	if waitPidfd(ctx, pidfd) {
		return nil
	}
	_ = unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
	kctx, kcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer kcancel()
	if waitPidfd(kctx, pidfd) {
		return fmt.Errorf("keeper pid %d did not exit in time: killed", k.pid)
	}
	return fmt.Errorf("keeper pid %d survives SIGKILL", k.pid)
}

// waitPidfd waits until the pidfd's process exited (true) or ctx ends.
func waitPidfd(ctx context.Context, pidfd int) bool {
	for {
		ms := 100
		if dl, ok := ctx.Deadline(); ok {
			ms = max(0, min(ms, int(time.Until(dl).Milliseconds())))
		}
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, ms)
		if err == nil && n > 0 {
			return true
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			return false
		}
		if ctx.Err() != nil {
			return false
		}
	}
}
