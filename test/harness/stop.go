package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

// Stop tears the containerd down and leaves nothing behind: in CRI mode it
// first stops and removes every pod sandbox through CRI; it deletes every
// task and container (so shims stop their VMs or containers), stops
// containerd (SIGTERM, SIGKILL after 10 s), kills any shim still serving
// this containerd (reported as an error: it leaked), unmounts everything
// under Dir, stops the registry (CRI mode), deletes the network namespace
// and removes Dir; last, the leak census (see Census) must match the one
// taken before Start. It goes on
// after a failed step and reports all failures. Calling it again does
// nothing.
func (c *Containerd) Stop(ctx context.Context) error {
	if c.stopped {
		return nil
	}
	c.stopped = true
	ctx = context.WithoutCancel(ctx)
	var errs []error

	if c.cri != nil {
		if err := c.RemovePods(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.deleteAll(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := c.terminate(10 * time.Second); err != nil {
		errs = append(errs, err)
	}
	if err := c.killShims(5 * time.Second); err != nil {
		errs = append(errs, err)
	}
	if err := mount.UnmountRecursive(c.Dir, unix.MNT_DETACH); err != nil {
		errs = append(errs, err)
	}
	if c.Registry != nil {
		if err := c.Registry.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := deleteNetNS(ctx, c.NetNS); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", c.Dir, err))
	}
	if leaks := Settle(c.census, c.censusScope, censusSettle); len(leaks) > 0 {
		errs = append(errs, fmt.Errorf("leak census: the host has %d more resources than before containerd started:\n  %s", len(leaks), strings.Join(leaks, "\n  ")))
	}
	return errors.Join(errs...)
}

// deleteAll force-deletes every task and container in every namespace,
// each ctr call bounded by a minute.
func (c *Containerd) deleteAll(ctx context.Context) error {
	call := func(args ...string) ([]string, error) {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		out, err := c.CtrOutput(ctx, args...)
		return strings.Fields(string(out)), err
	}
	namespaces, err := call("namespaces", "ls", "-q")
	if err != nil {
		return fmt.Errorf("list namespaces: %w", err)
	}
	var errs []error
	for _, ns := range namespaces {
		tasks, err := call("-n", ns, "tasks", "ls", "-q")
		if err != nil {
			errs = append(errs, err)
		}
		for _, id := range tasks {
			log.G(ctx).WithField("task", id).Info("harness: deleting leftover task")
			if _, err := call("-n", ns, "tasks", "delete", "--force", id); err != nil {
				errs = append(errs, err)
			}
		}
		containers, err := call("-n", ns, "containers", "ls", "-q")
		if err != nil {
			errs = append(errs, err)
		}
		for _, id := range containers {
			if _, err := call("-n", ns, "containers", "delete", id); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// terminate stops containerd: SIGTERM, then SIGKILL after grace.
func (c *Containerd) terminate(grace time.Duration) error {
	select {
	case <-c.exited:
		return nil
	default:
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("signal containerd %d: %w", c.cmd.Process.Pid, err)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-c.exited:
		return nil
	case <-timer.C:
	}
	_ = c.cmd.Process.Kill()
	<-c.exited
	return fmt.Errorf("containerd %d ignored SIGTERM for %s and was killed", c.cmd.Process.Pid, grace)
}

// killShims waits up to grace for the shims started by this containerd to
// exit, then kills the rest and names them in the error.
func (c *Containerd) killShims(grace time.Duration) error {
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		pids := c.shimPids()
		if len(pids) == 0 {
			return nil
		}
		select {
		case <-tick.C:
			continue
		case <-deadline.C:
		}
		var names []string
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			names = append(names, strconv.Itoa(pid))
		}
		return fmt.Errorf("shims still running %s after containerd stopped, killed: pids %s", grace, strings.Join(names, ", "))
	}
}

// shimPids lists processes whose command line names this containerd's
// address (shims get it as -address).
func (c *Containerd) shimPids() []int {
	matches, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var pids []int
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) == 0 || !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		for _, a := range args {
			if a == c.Address {
				pid, err := strconv.Atoi(filepath.Base(filepath.Dir(m)))
				if err == nil && pid != os.Getpid() {
					pids = append(pids, pid)
				}
				break
			}
		}
	}
	return pids
}
