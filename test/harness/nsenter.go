package harness

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// inNetNS runs fn on an OS thread that has joined the network namespace
// at nsPath. The thread is never returned to Go's pool (it exits with the
// goroutine), so no other goroutine ever runs in that namespace. Sockets
// fn creates stay in the namespace after fn returns.
func inNetNS(nsPath string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with this goroutine
		fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open network namespace %s: %w", nsPath, err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		_ = unix.Close(fd)
		if err != nil {
			errc <- fmt.Errorf("join network namespace %s: %w", nsPath, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Command returns a command that runs name inside containerd's network
// namespace (nsenter --net; never `ip netns exec`, which remounts /sys and
// hides the cgroup filesystem from runc). Its environment is containerd's
// (PATH includes the setup cache), so crictl and critest are found.
func (c *Containerd) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + netnsPath(c.NetNS), "--", name}, args...)...)
	cmd.Env = append([]string(nil), c.env...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// DialContext dials addr (e.g. a pod IP and port, or a hostPort on
// 127.0.0.1) from inside containerd's network namespace. Use it as an
// http.Transport's DialContext to reach pods from a test.
func (c *Containerd) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := inNetNS(netnsPath(c.NetNS), func() error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s %s in netns %s: %w", network, addr, c.NetNS, err)
	}
	return conn, nil
}

// writeSysctls sets sysctls (paths under /proc/sys) inside the network
// namespace at nsPath.
func writeSysctls(nsPath string, values map[string]string) error {
	return inNetNS(nsPath, func() error {
		for k, v := range values {
			p := "/proc/sys/" + k
			if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
				return fmt.Errorf("set %s=%s in %s: %w", p, v, nsPath, err)
			}
		}
		return nil
	})
}
