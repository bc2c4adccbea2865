package guest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

// ServerArg is the argument PID 1 passes when it starts the agent server
// from its own binary.
const ServerArg = "serve"

// Boot does PID 1's one-time setup: a pivotable root, pseudo file systems,
// the console log, cgroup v2 and kernel modules. Failures that leave the
// guest unusable are returned; the rest are logged.
func Boot(ctx context.Context) error {
	if isInitramfsRoot() {
		if err := movableRoot(); err != nil {
			return fmt.Errorf("prepare root: %w", err)
		}
	}
	if err := mountAll(earlyMounts); err != nil {
		return err
	}
	if err := redirectToConsole(); err != nil {
		// Without a console there is no log; keep going regardless.
		fmt.Fprintln(os.Stderr, "veil-agent:", err)
	}
	log.G(ctx).Infof("pid 1 started %ss after kernel start", Uptime())
	if err := mountAll(lateMounts); err != nil {
		return err
	}
	for _, d := range []string{"/run/veil/shared", "/run/veil/containers"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("mkdir %s: %w", d, err)
		}
	}
	for _, l := range []struct{ name, target string }{
		{"/dev/fd", "/proc/self/fd"}, {"/dev/stdin", "/proc/self/fd/0"},
		{"/dev/stdout", "/proc/self/fd/1"}, {"/dev/stderr", "/proc/self/fd/2"},
	} {
		_ = os.Symlink(l.target, l.name)
	}
	if err := enableControllers(ctx, "/sys/fs/cgroup"); err != nil {
		log.G(ctx).WithError(err).Warn("cgroup controllers")
	}
	rel, err := KernelRelease()
	if err != nil {
		return err
	}
	if err := LoadModules(ctx, ModulesList, filepath.Join("/lib/modules", rel)); err != nil {
		log.G(ctx).WithError(err).Error("some kernel modules failed to load")
	}
	if err := os.Setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"); err != nil {
		return err
	}
	log.G(ctx).Infof("guest set up %ss after kernel start", Uptime())
	return nil
}

// Uptime returns the seconds since the kernel started, as /proc/uptime
// says (1/100 s), or "?". The agent's boot lines carry it, so that a
// start can be broken down by stage from the console (make bench).
func Uptime() string {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

// Supervise starts the agent server (this binary with ServerArg), reaps
// every child that ends up with PID 1, forwards SIGTERM and SIGINT to the
// server, and returns the server's exit once it ended. Only PID 1 calls it:
// the server itself waits for its own children normally, and as PID 1 only
// waits for the server and for orphans, no exit status is ever stolen.
func Supervise(ctx context.Context, args []string) (syscall.WaitStatus, error) {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, unix.SIGCHLD, unix.SIGTERM, unix.SIGINT, unix.SIGPWR)
	defer signal.Stop(sigs)

	self, err := os.Executable()
	if err != nil {
		self = "/proc/self/exe"
	}
	proc, err := os.StartProcess(self, append([]string{self, ServerArg}, args...), &os.ProcAttr{
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Env:   os.Environ(),
	})
	if err != nil {
		return 0, fmt.Errorf("start agent server %s: %w", self, err)
	}
	server := proc.Pid
	log.G(ctx).WithField("pid", server).Info("agent server started")

	for sig := range sigs {
		switch sig {
		case unix.SIGCHLD:
			if ws, done := reap(ctx, server); done {
				return ws, nil
			}
		default:
			log.G(ctx).Infof("%v: forwarding to the agent server", sig)
			if err := unix.Kill(server, unix.SIGTERM); err != nil && !errors.Is(err, unix.ESRCH) {
				log.G(ctx).WithError(err).Warn("forward signal")
			}
		}
	}
	return 0, errors.New("signal channel closed")
}

// reap collects every exited child; it reports the server's status when
// the server was among them.
func reap(ctx context.Context, server int) (syscall.WaitStatus, bool) {
	var (
		serverStatus syscall.WaitStatus
		serverDone   bool
	)
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return serverStatus, serverDone
		}
		if pid == server {
			serverStatus, serverDone = syscall.WaitStatus(ws), true
			continue
		}
		log.G(ctx).WithFields(log.Fields{"pid": pid, "status": ws.ExitStatus()}).Debug("reaped orphan")
	}
}

// PowerOff syncs and powers the VM off; it returns only on failure.
func PowerOff(ctx context.Context) error {
	unix.Sync()
	log.G(ctx).Info("powering off")
	// Let the serial console drain the last lines (tcdrain).
	_ = unix.IoctlSetInt(2, unix.TCSBRK, 1)
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		return fmt.Errorf("power off: %w", err)
	}
	return nil
}
