package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// daemon is one long-running component (etcd, kube-apiserver, kubelet),
// run inside the harness's network namespace with its log in a file.
type daemon struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// startDaemon runs bin with args in the network namespace at netns
// (nsenter --net, which execs bin: the pid is the daemon's), in its own
// process group, writing its output to logPath.
func startDaemon(name, netns, bin, logPath string, args ...string) (*daemon, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", name, err)
	}
	defer func() { _ = f.Close() }()
	cmd := exec.Command("nsenter", append([]string{"--net=" + netns, "--", bin}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group, and no Pdeathsig: that follows the forking OS
	// thread, which Go may end (a thread locked by a netns dial) long
	// before this process.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	d := &daemon{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	return d, nil
}

// exited returns an error when the daemon is no longer running.
func (d *daemon) exited() error {
	select {
	case <-d.done:
		return fmt.Errorf("%s exited (%w); see %s", d.name, d.err, d.log)
	default:
		return nil
	}
}

// stop ends the daemon: SIGTERM, then SIGKILL after grace. It waits until
// the process is gone.
func (d *daemon) stop(ctx context.Context, grace time.Duration) error {
	select {
	case <-d.done:
		return nil
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-d.done:
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	_ = d.cmd.Process.Kill()
	<-d.done
	if ctx.Err() != nil {
		return errors.Join(fmt.Errorf("stop %s", d.name), ctx.Err())
	}
	return nil
}
