package pool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/runtime/cleanup"
	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/sandbox"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// keeperName names the keeper's pid file in its VM's directory
// (keeper.pid): the sandbox's cleanup kills it like any helper.
const keeperName = "keeper"

// keeperStopTimeout bounds the keeper's teardown of its VM.
const keeperStopTimeout = 30 * time.Second

// lockPath is the file a keeper holds locked (flock) for as long as it
// lives (statedir.PoolLockFile).
func lockPath(stateDir, vmid string) string { return statedir.PoolLockFile(stateDir, vmid) }

// Keep is a keeper's life (see the package doc): it locks the VM's lock
// file, boots the VM in dir with sandbox.Prestart, reports "ready" (or
// "failed") to its owner on ownerConn, and then serves the owner's
// requests until the owner goes away or ctx ends. An idle VM is then
// removed entirely; a claimed one has its processes ended and the rest
// is left to the claimant's cleanup.
func Keep(ctx context.Context, cfg *config.Config, dir statedir.Dir, owner *net.UnixConn) error {
	lg := log.G(ctx).WithField("pool_vm", dir.ID())
	lock, err := lockVM(cfg.StateDir, dir.ID())
	if err != nil {
		_ = send(owner, reply{State: "failed", Error: err.Error()}, nil, time.Now().Add(time.Second))
		return err
	}
	defer func() { _ = lock.Close() }()
	key, err := Key(cfg, cfg.Pool.NICs)
	if err != nil {
		return err
	}
	if cfg.Pool.NICs > 0 {
		if err := ownNetNS(); err != nil {
			_ = send(owner, reply{State: "failed", Error: err.Error()}, nil, time.Now().Add(time.Second))
			return err
		}
	}
	began := time.Now()
	sb, err := sandbox.Prestart(ctx, dir, cfg, "/proc/self/ns/net")
	if err != nil {
		_ = send(owner, reply{State: "failed", Error: err.Error()}, nil, time.Now().Add(time.Second))
		_ = os.Remove(lock.Name())
		return err
	}
	took := time.Since(began)
	pidFile := dir.PidFile(keeperName)
	claimed, err := func() (bool, error) {
		if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o640); err != nil {
			return false, fmt.Errorf("write %s: %w", pidFile, err)
		}
		if err := send(owner, reply{State: "ready", KeeperPid: os.Getpid(), Key: key, BootSecs: took.Seconds()}, nil, time.Now().Add(5*time.Second)); err != nil {
			return false, fmt.Errorf("report ready: %w", err)
		}
		lg.WithField("took", took.Round(time.Millisecond)).Info("pool VM ready")
		return serveOwner(ctx, sb, owner)
	}()
	if err != nil {
		lg.WithError(err).Warn("pool VM: owner connection")
	}
	sctx, cancel := cleanup.Context(ctx, keeperStopTimeout)
	defer cancel()
	if claimed {
		err = sb.EndProcesses(sctx)
		if rerr := os.Remove(pidFile); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	} else {
		err = sb.Stop(sctx)
	}
	_ = os.Remove(lock.Name())
	lg.WithField("claimed", claimed).Info("pool VM keeper done")
	return err
}

// serveOwner answers the owner until it closes the connection (or ctx
// ends, or the idle VM dies); it reports whether the VM was claimed.
func serveOwner(ctx context.Context, sb *sandbox.Sandbox, owner *net.UnixConn) (bool, error) {
	type msg struct {
		req request
		err error
	}
	msgs := make(chan msg)
	go func() {
		for {
			var req request
			files, err := receive(owner, &req, time.Time{})
			closeFiles(files)
			msgs <- msg{req, err}
			if err != nil {
				return
			}
		}
	}()
	claimed := false
	for {
		var vmDone <-chan struct{}
		if !claimed {
			vmDone = sb.Done()
		}
		select {
		case <-ctx.Done():
			// The owner's connection stays open: the reader goroutine
			// ends with the process.
			return claimed, ctx.Err()
		case <-vmDone:
			return false, errors.New("the idle VM died")
		case m := <-msgs:
			if m.err != nil {
				return claimed, nil //nolint:nilerr // the owner closing its end is how it says "done"
			}
			if m.req.Op != "claim" || claimed {
				_ = send(owner, reply{Error: fmt.Sprintf("unexpected request %q", m.req.Op)}, nil, time.Now().Add(time.Second))
				continue
			}
			// The claimant dials its own agent connection.
			_ = sb.CloseAgent()
			claimed = true
			log.G(ctx).WithFields(log.Fields{"pool_vm": sb.ID(), "sandbox": m.req.ID}).Info("pool VM handed over")
			if err := send(owner, reply{State: "claimed"}, nil, time.Now().Add(time.Second)); err != nil {
				return true, err
			}
		}
	}
}

// lockVM creates and locks the VM's lock file; it fails when another
// keeper holds it.
func lockVM(stateDir, vmid string) (*os.File, error) {
	p := lockPath(stateDir, vmid)
	var f *os.File
	var err error
	// The pool's directory goes when its last VM goes: make it again,
	// and once more if it went in between.
	for range 2 {
		if err = os.MkdirAll(filepath.Dir(p), 0o711); err != nil {
			continue
		}
		if f, err = os.OpenFile(p, os.O_CREATE|os.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("pool VM lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("pool VM lock %s: %w", p, err)
	}
	return f, nil
}

// keeperAlive reports whether a keeper holds vmid's lock file.
func keeperAlive(stateDir, vmid string) bool {
	f, err := os.OpenFile(lockPath(stateDir, vmid), os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer func() { _ = f.Close() }()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	return false
}

// ownNetNS checks that the keeper runs in a network namespace of its own
// (the daemon starts it in a new one), where its VM's NICs wait for a
// pod: never its daemon's (the host's).
func ownNetNS() error {
	var self, init unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &self); err != nil {
		return fmt.Errorf("own network namespace: %w", err)
	}
	parent := fmt.Sprintf("/proc/%d/ns/net", os.Getppid())
	if err := unix.Stat(parent, &init); err != nil {
		return fmt.Errorf("the daemon's network namespace (%s): %w", parent, err)
	}
	if self.Ino == init.Ino && self.Dev == init.Dev {
		return errors.New("the keeper runs in its daemon's network namespace: its VM's NICs need one of their own")
	}
	return nil
}
