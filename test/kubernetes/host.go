package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// kubeletSysctls are the host settings the kubelet changes at start
// (protectKernelDefaults=false lets it): the suite puts them back.
var kubeletSysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
}

// containerLogLinks is where the kubelet links every container's log
// (a path it does not let configure).
const containerLogLinks = "/var/log/containers"

// kubeletFixedDirs are made by the kubelet outside its --root-dir
// whatever it is told (the device plugin socket's directory), outermost
// first.
var kubeletFixedDirs = []string{"/var/lib/kubelet", "/var/lib/kubelet/device-plugins"}

// hostChanges records what the cluster changes on the host outside its
// directory, so that Stop can put it back.
type hostChanges struct {
	netns   string
	sysctls map[string]string
	// logLinksExisted: /var/log/containers was there before.
	logLinksExisted bool
	// madeDir is the outermost of kubeletFixedDirs that was not there
	// before ("" when all were).
	madeDir string
	// cgroupsBefore are the kubepods cgroups that existed before (none
	// expected); only those the cluster made are removed.
	cgroupsBefore []string
	addedIP       bool
}

// saveHost records the host state, then adds the node's address to the
// network namespace's loopback device.
func saveHost(ctx context.Context, netns string) (*hostChanges, error) {
	h := &hostChanges{netns: netns, sysctls: map[string]string{}}
	for _, s := range kubeletSysctls {
		b, err := os.ReadFile("/proc/sys/" + s)
		if err != nil {
			return nil, fmt.Errorf("read sysctl %s: %w", s, err)
		}
		h.sysctls[s] = strings.TrimSpace(string(b))
	}
	if _, err := os.Stat(containerLogLinks); err == nil {
		h.logLinksExisted = true
	}
	for _, d := range kubeletFixedDirs {
		if _, err := os.Stat(d); errors.Is(err, fs.ErrNotExist) {
			h.madeDir = d
			break
		}
	}
	h.cgroupsBefore = kubepodsCgroups()
	if out, err := exec.CommandContext(ctx, "ip", "-n", netns, "addr", "add", nodeIP+"/32", "dev", "lo").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("add node address %s: %w: %s", nodeIP, err, out)
	}
	h.addedIP = true
	return h, nil
}

// kubepodsCgroups lists the kubelet's top cgroup in every hierarchy.
func kubepodsCgroups() []string {
	ds, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods")
	if d := "/sys/fs/cgroup/kubepods"; isDir(d) {
		ds = append(ds, d)
	}
	return ds
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// restore puts the host back: sysctls, the kubelet's cgroups (empty once
// its pods are gone), its log links into podLogs, the directories it made
// outside its root, the node address.
func (h *hostChanges) restore(ctx context.Context, podLogs string) error {
	var errs []error
	for s, v := range h.sysctls {
		if err := os.WriteFile("/proc/sys/"+s, []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restore sysctl %s=%s: %w", s, v, err))
		}
	}
	for _, d := range kubepodsCgroups() {
		if slices.Contains(h.cgroupsBefore, d) {
			continue
		}
		if err := removeCgroupTree(d); err != nil {
			errs = append(errs, err)
		}
	}
	if err := removeLogLinks(podLogs, h.logLinksExisted); err != nil {
		errs = append(errs, err)
	}
	if h.madeDir != "" {
		if err := os.RemoveAll(h.madeDir); err != nil {
			errs = append(errs, fmt.Errorf("remove the kubelet's %s: %w", h.madeDir, err))
		}
	}
	if h.addedIP {
		if out, err := exec.CommandContext(ctx, "ip", "-n", h.netns, "addr", "del", nodeIP+"/32", "dev", "lo").CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("remove node address: %w: %s", err, out))
		}
	}
	return errors.Join(errs...)
}

// removeCgroupTree removes a cgroup and its children, deepest first.
func removeCgroupTree(root string) error {
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("walk cgroup %s: %w", root, err)
	}
	var errs []error
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dirs[i], err))
		}
	}
	return errors.Join(errs...)
}

// removeLogLinks removes the links in /var/log/containers that point into
// podLogs, and the directory itself when the cluster made it.
func removeLogLinks(podLogs string, existed bool) error {
	es, err := os.ReadDir(containerLogLinks)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range es {
		p := filepath.Join(containerLogLinks, e.Name())
		target, err := os.Readlink(p)
		if err != nil || !strings.HasPrefix(target, podLogs+"/") {
			continue
		}
		if err := os.Remove(p); err != nil {
			errs = append(errs, err)
		}
	}
	if !existed {
		if err := os.Remove(containerLogLinks); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove %s: %w", containerLogLinks, err))
		}
	}
	return errors.Join(errs...)
}
