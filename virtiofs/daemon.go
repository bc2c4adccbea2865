package virtiofs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/veil-runtime/veil/runtime/cleanup"
	"github.com/veil-runtime/veil/runtime/jail"
	"github.com/veil-runtime/veil/runtime/proc"
	"github.com/veil-runtime/veil/runtime/statedir"
	"golang.org/x/sys/unix"
)

// File names inside the sandbox directory.
const (
	processName = "virtiofsd" // virtiofsd.log, virtiofsd.pid
	socketName  = statedir.VirtiofsdSocket
)

// stopGrace is how long virtiofsd gets to exit after SIGTERM.
const stopGrace = time.Second

// defaultNofile is virtiofsd's open-file bound when the config sets none.
const defaultNofile = 65536

// Config describes one virtiofsd.
type Config struct {
	// Path is the virtiofsd binary; empty means virtiofsd on PATH.
	Path string
	// SharedDir is the directory the guest sees.
	SharedDir string
	// Dir receives the socket, log and pid file.
	Dir string
	// Cache is virtiofsd's --cache mode (auto, always, never, metadata).
	Cache string
	// Jail and Cgroup confine virtiofsd (see runtime/proc.Spec); it
	// keeps its own namespace sandbox and seccomp filter.
	Jail   *jail.Spec
	Cgroup proc.Placer
	// RlimitNofile bounds its open files (--rlimit-nofile); 0 leaves
	// virtiofsd's default.
	RlimitNofile uint64
}

// Daemon is a running virtiofsd.
type Daemon struct {
	p      *proc.Process
	socket string
}

// Start runs virtiofsd for cfg.SharedDir. The runtime creates the
// listening socket itself and hands it over as fd 3 (--fd), so the socket
// is ready when Start returns and no probe connection is needed (virtiofsd
// serves exactly one front-end).
func Start(ctx context.Context, cfg Config) (_ *Daemon, retErr error) {
	path := cfg.Path
	if path == "" {
		path = "virtiofsd"
	}
	cache := cfg.Cache
	if cache == "" {
		cache = "auto"
	}
	socket := socketPath(cfg.Dir)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("virtiofsd: listen: %w", err)
	}
	// The socket file must outlive our copy of the listener.
	ln.SetUnlinkOnClose(false)
	var undo cleanup.Stack
	defer undo.OnError(ctx, &retErr)
	undo.Push("virtiofsd's socket", func(context.Context) error { return os.Remove(socket) })
	f, err := ln.File()
	_ = ln.Close()
	if err != nil {
		return nil, fmt.Errorf("virtiofsd: socket fd: %w", err)
	}
	defer func() { _ = f.Close() }()

	p, err := proc.Start(ctx, proc.Spec{
		Name: processName,
		Dir:  cfg.Dir,
		Path: path,
		Args: []string{
			"--fd=3",
			"--shared-dir", cfg.SharedDir,
			"--cache", cache,
			"--announce-submounts",
			"--thread-pool-size=1",
			"--sandbox", "namespace",
			// Device nodes and file capabilities are never made for the
			// guest (FIFOs, sockets and whiteouts need neither); the
			// serving process keeps chown, dac_override, fowner, fsetid,
			// setgid and setuid.
			"--modcaps=-mknod:-setfcap",
			"--rlimit-nofile=" + strconv.FormatUint(nofile(cfg.RlimitNofile), 10),
		},
		ExtraFiles: []*os.File{f},
		Jail:       cfg.Jail,
		Cgroup:     cfg.Cgroup,
	})
	if err != nil {
		return nil, err
	}
	return &Daemon{p: p, socket: socket}, nil
}

// socketPath is the vhost-user socket of the virtiofsd of the sandbox
// directory dir.
func socketPath(dir string) string { return filepath.Join(dir, socketName) }

// nofile is the open-file bound virtiofsd gets: want (0: the default
// 65536), but never above this process's hard limit, which virtiofsd
// could not raise itself to without CAP_SYS_RESOURCE.
func nofile(want uint64) uint64 {
	if want == 0 {
		want = defaultNofile
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err == nil && rl.Max < want {
		want = rl.Max
	}
	return want
}

// Socket is the vhost-user socket to give the VMM.
func (d *Daemon) Socket() string { return d.socket }

// MountNamespace opens virtiofsd's mount namespace (its own, with the
// share as root: --sandbox namespace), where the share's container mounts
// go. It fails with statedir.ErrServerGone once virtiofsd exited.
func (d *Daemon) MountNamespace() (*os.File, error) {
	f, err := d.p.OpenNamespace("mnt")
	if errors.Is(err, proc.ErrExited) {
		return nil, fmt.Errorf("virtiofsd: %w", statedir.ErrServerGone)
	}
	return f, err
}

// Pid is virtiofsd's host pid.
func (d *Daemon) Pid() int { return d.p.Pid() }

// Done is closed when virtiofsd exited.
func (d *Daemon) Done() <-chan struct{} { return d.p.Done() }

// ExitError describes virtiofsd's exit with its log tail.
func (d *Daemon) ExitError() error { return d.p.ExitError() }

// LogTail is the end of virtiofsd's log.
func (d *Daemon) LogTail() string { return d.p.LogTail() }

// Stop terminates virtiofsd (SIGTERM, then SIGKILL), waits for it and
// removes its socket and pid file. It is idempotent.
func (d *Daemon) Stop(ctx context.Context) error {
	err := d.p.Stop(ctx, stopGrace)
	if rerr := os.Remove(d.socket); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}
