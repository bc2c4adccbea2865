package pool

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/runtime/cleanup"
	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/sandbox"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// VM is one pool VM as `veil pool ls` shows it.
type VM struct {
	ID    string    `json:"id"`
	State string    `json:"state"` // booting or ready
	Since time.Time `json:"since"` // when it started booting
	// BootSecs is how long its boot took (0 while booting).
	BootSecs float64 `json:"boot_secs,omitempty"`
	// KeeperPid is its keeper's pid.
	KeeperPid int    `json:"keeper_pid"`
	Dir       string `json:"dir"`
}

// Daemon keeps the pool (see the package doc).
type Daemon struct {
	// Config is the pool's configuration; ConfigPath is its file, which
	// keepers load too.
	Config     *config.Config
	ConfigPath string
	// KeeperArgs is the command that runs a keeper for a VM directory,
	// which is appended as the last argument (`veil pool keep`).
	KeeperArgs []string

	key string

	mu       sync.Mutex
	vms      map[string]*vmEntry
	failures int
	lastErr  string
	retryAt  time.Time     // no boot before it (after a failure)
	wake     chan struct{} // a VM left or became ready: refill
	// readers are the goroutines waiting for keepers' ready reports,
	// handlers those serving clients.
	readers, handlers sync.WaitGroup
}

type vmEntry struct {
	VM
	conn *net.UnixConn // the owner end; nil once handed out
	cmd  *exec.Cmd
	// pidfd is the keeper's, opened before anything could reap it; the
	// claimant gets a copy.
	pidfd *os.File
}

// retryDelay is how long the daemon waits before booting again after a
// VM failed to boot (each failure is logged).
const retryDelay = 5 * time.Second

// Serve runs the daemon until ctx ends: it removes what dead keepers
// left, listens on pool.socket, and keeps pool.size VMs booted. When ctx
// ends it stops every idle VM and waits for their keepers.
func (d *Daemon) Serve(ctx context.Context) error {
	cfg := d.Config
	if cfg.Pool.Size <= 0 {
		return fmt.Errorf("pool.size is %d: the pool is off (set pool.size in %s)", cfg.Pool.Size, d.ConfigPath)
	}
	if len(d.KeeperArgs) == 0 {
		return errors.New("pool daemon: no keeper command")
	}
	// One daemon per pool: a second one would sweep the first's VMs.
	lock, err := lockDaemon(cfg.Pool.Socket)
	if err != nil {
		return err
	}
	defer func() {
		_ = os.Remove(lock.Name())
		_ = lock.Close()
	}()
	key, err := Key(cfg, cfg.Pool.NICs)
	if err != nil {
		return err
	}
	d.key, d.vms, d.wake = key, map[string]*vmEntry{}, make(chan struct{}, 1)
	if err := Sweep(ctx, cfg); err != nil {
		return err
	}
	l, err := listen(cfg.Pool.Socket)
	if err != nil {
		return err
	}
	log.G(ctx).WithFields(log.Fields{"socket": cfg.Pool.Socket, "size": cfg.Pool.Size, "key": key}).Info("pool serving")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.accept(ctx, l)
	}()
	d.refill(ctx)
	_ = l.Close()
	_ = os.Remove(cfg.Pool.Socket)
	wg.Wait()
	d.handlers.Wait()
	d.drain()
	d.readers.Wait()
	d.awaitIdleKeepers(ctx)
	d.removeEmpty()
	log.G(ctx).Info("pool stopped")
	return nil
}

// removeEmpty removes the pool's directory and parent cgroup once no VM
// is in them (claimed VMs left them; rmdir refuses anything else).
func (d *Daemon) removeEmpty() {
	_ = os.Remove(filepath.Join(d.Config.StateDir, statedir.PoolDirName))
	sandbox.RemovePoolCgroup(d.Config)
}

// listen makes the daemon's socket, root only. A socket file no one
// listens on is a dead daemon's and is replaced; a live one is an error.
func listen(path string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return nil, fmt.Errorf("pool socket directory: %w", err)
	}
	if err := ownedDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		_ = c.Close()
		return nil, fmt.Errorf("a pool daemon already serves %s", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	old := unix.Umask(0o077)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("pool socket: %w", err)
	}
	l.SetUnlinkOnClose(false)
	return l, nil
}

// refill boots VMs until the pool holds pool.size of them (booting or
// ready), at most pool.boot_concurrency at once; it returns when ctx
// ends.
func (d *Daemon) refill(ctx context.Context) {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	var delay <-chan time.Time
	for {
		if wait := d.backoff(); delay == nil && wait > 0 {
			delay = time.After(wait)
		}
		if delay == nil {
			d.recycle(ctx)
			for d.shouldBoot() {
				if err := d.boot(ctx); err != nil {
					log.G(ctx).WithError(err).Error("pool: boot a VM")
					d.recordFailure(err)
					delay = time.After(retryDelay)
					break
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-tick.C:
		case <-delay:
			delay = nil
		}
	}
}

func (d *Daemon) shouldBoot() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	booting := 0
	for _, v := range d.vms {
		if v.State == "booting" {
			booting++
		}
	}
	return len(d.vms) < d.Config.Pool.Size && booting < d.Config.Pool.BootConcurrency
}

// recordFailure counts a VM that failed to boot; no VM boots for
// retryDelay after it (each failure is logged; a pool that cannot boot
// does not spin).
func (d *Daemon) recordFailure(err error) {
	d.mu.Lock()
	d.recordFailureLocked(err)
	d.mu.Unlock()
}

func (d *Daemon) recordFailureLocked(err error) {
	d.failures++
	d.lastErr = err.Error()
	d.retryAt = time.Now().Add(retryDelay)
}

// backoff is how long the pool waits before it boots again.
func (d *Daemon) backoff() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return time.Until(d.retryAt)
}

func (d *Daemon) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// recycle stops ready VMs older than pool.max_idle.
func (d *Daemon) recycle(ctx context.Context) {
	maxIdle := d.Config.Pool.MaxIdle.Duration
	if maxIdle <= 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, v := range d.vms {
		if v.State == "ready" && time.Since(v.Since) > maxIdle && v.conn != nil {
			log.G(ctx).WithField("pool_vm", v.ID).Info("pool: replacing a VM idle for longer than pool.max_idle")
			_ = v.conn.Close()
			v.conn = nil
			v.State = "stopping"
		}
	}
}

// boot starts one keeper and tracks it.
func (d *Daemon) boot(ctx context.Context) error {
	vmid, err := newVMID()
	if err != nil {
		return err
	}
	dir, err := statedir.NewPool(d.Config.StateDir, vmid)
	if err != nil {
		return err
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket pair: %w", err)
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "pool-owner"), os.NewFile(uintptr(fds[1]), "pool-keeper")
	defer func() { _ = theirs.Close() }()
	conn, err := unixConn(mine)
	_ = mine.Close()
	if err != nil {
		return err
	}
	args := append(append([]string{}, d.KeeperArgs[1:]...), dir.Path()+"/")
	cmd := exec.Command(d.KeeperArgs[0], args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.ExtraFiles = []*os.File{theirs}
	// Its own process group: a signal to the daemon's group (^C) is not
	// the keeper's; it watches its owner connection instead.
	// A network namespace of its own holds its VM's NICs until a pod
	// claims it (runtime/network.Park).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Cloneflags: syscall.CLONE_NEWNET}
	if err := cmd.Start(); err != nil {
		_ = conn.Close()
		return fmt.Errorf("start keeper: %w", err)
	}
	// The keeper is not reaped before cmd.Wait: its pid is surely its.
	pidfd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		_ = conn.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return fmt.Errorf("keeper pidfd: %w", err)
	}
	v := &vmEntry{VM: VM{ID: vmid, State: "booting", Since: time.Now(), KeeperPid: cmd.Process.Pid, Dir: dir.Path()}, conn: conn, cmd: cmd, pidfd: os.NewFile(uintptr(pidfd), "keeper-pidfd")}
	d.mu.Lock()
	d.vms[vmid] = v
	d.mu.Unlock()
	d.readers.Add(1)
	go func() {
		defer d.readers.Done()
		d.awaitReady(ctx, v, conn)
	}()
	go func() {
		err := cmd.Wait()
		d.mu.Lock()
		idle := d.vms[vmid] == v
		if idle {
			delete(d.vms, vmid)
			_ = v.pidfd.Close()
		}
		if v.conn != nil {
			_ = v.conn.Close()
			v.conn = nil
		}
		d.mu.Unlock()
		log.G(ctx).WithFields(log.Fields{"pool_vm": vmid, "exit": err}).Debug("pool keeper exited")
		if idle {
			// A keeper removes its VM; one killed leaves it.
			cctx, cancel := cleanup.Context(ctx, keeperStopTimeout)
			if cerr := sandbox.CleanupDir(cctx, d.Config, dir); cerr != nil {
				log.G(ctx).WithError(cerr).WithField("pool_vm", vmid).Warn("pool: remove what a dead keeper left")
			}
			cancel()
		}
		d.signal()
	}()
	return nil
}

// awaitReady reads the keeper's first report.
func (d *Daemon) awaitReady(ctx context.Context, v *vmEntry, conn *net.UnixConn) {
	t := d.Config.Timeouts
	var r reply
	files, err := receive(conn, &r, time.Now().Add(t.VMStart.Duration+t.AgentDial.Duration+10*time.Second))
	closeFiles(files)
	lg := log.G(ctx).WithField("pool_vm", v.ID)
	switch {
	case err == nil && r.State == "ready" && r.Key == d.key:
	case err == nil && r.State == "ready":
		err = fmt.Errorf("keeper booted a VM of key %s, the pool's is %s (the config file changed?)", r.Key, d.key)
	case err == nil:
		err = fmt.Errorf("keeper: %s", r.Error)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		lg.WithError(err).Error("pool VM failed to boot")
		d.recordFailureLocked(err)
		if v.conn != nil {
			_ = v.conn.Close()
			v.conn = nil
		}
		// A keeper that never reported is not waited for: its exit
		// ends the VM's processes, and its Wait removes the rest.
		_ = unix.PidfdSendSignal(int(v.pidfd.Fd()), unix.SIGKILL, nil, 0)
		return
	}
	if v.conn == nil {
		return // drained meanwhile
	}
	v.State, v.BootSecs = "ready", r.BootSecs
	d.signal()
}

// awaitIdleKeepers waits until every keeper of an unclaimed VM exited
// (claimed VMs' keepers are their claimants'), or keeperStopTimeout
// passed.
func (d *Daemon) awaitIdleKeepers(ctx context.Context) {
	deadline := time.After(keeperStopTimeout + 5*time.Second)
	for {
		d.mu.Lock()
		n := len(d.vms)
		d.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-d.wake:
		case <-deadline:
			log.G(ctx).WithField("keepers", n).Warn("pool: keepers still stopping their VMs at exit")
			return
		}
	}
}

// drain closes every idle VM's owner connection: their keepers remove
// them.
func (d *Daemon) drain() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, v := range d.vms {
		if v.conn != nil {
			_ = v.conn.Close()
			v.conn = nil
		}
	}
}

// list is the pool as `veil pool ls` shows it.
func (d *Daemon) list() reply {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := reply{Size: d.Config.Pool.Size, PoolKey: d.key, Failures: d.failures, LastError: d.lastErr, VMs: []VM{}}
	for _, v := range d.vms {
		r.VMs = append(r.VMs, v.VM)
	}
	sort.Slice(r.VMs, func(i, j int) bool { return r.VMs[i].Since.Before(r.VMs[j].Since) })
	return r
}

// take removes the oldest ready VM from the pool for a claim; the
// caller owns the returned connection.
func (d *Daemon) take(key string) (*vmEntry, *net.UnixConn, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if key != d.key {
		return nil, nil, reasonMismatch
	}
	var best *vmEntry
	for _, v := range d.vms {
		if v.State == "ready" && v.conn != nil && (best == nil || v.Since.Before(best.Since)) {
			best = v
		}
	}
	if best == nil {
		return nil, nil, reasonEmpty
	}
	delete(d.vms, best.ID)
	conn := best.conn
	best.conn = nil
	return best, conn, ""
}

func newVMID() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "vm" + hex.EncodeToString(b), nil
}

// lockDaemon takes the pool's daemon lock, <pool.socket>.lock; it fails
// while another daemon holds it.
func lockDaemon(socket string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(socket), 0o711); err != nil {
		return nil, err
	}
	p := socket + ".lock"
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pool daemon lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("pool daemon lock %s: another daemon serves this pool: %w", p, err)
	}
	return f, nil
}

// ownedDir checks that dir is a directory of this process's user that
// no one else may write: where the pool's socket may be (no other user
// can put a socket of theirs in its place).
func ownedDir(dir string) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("pool socket directory %s: %w", dir, err)
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("pool socket directory %s is not a directory", dir)
	case int(st.Uid) != os.Geteuid():
		return fmt.Errorf("pool socket directory %s belongs to uid %d, not %d", dir, st.Uid, os.Geteuid())
	case st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0:
		return fmt.Errorf("pool socket directory %s is writable by others (mode %#o)", dir, st.Mode&0o7777)
	}
	return nil
}
