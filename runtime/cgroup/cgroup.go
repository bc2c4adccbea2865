package cgroup

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/manager"
	"golang.org/x/sys/unix"
)

// Cgroup is a sandbox cgroup.
type Cgroup struct {
	path string
	v2   bool
	m    cgroups.Manager
	// dirs maps a v1 hierarchy ("memory", "name=systemd", "" for a hybrid
	// host's cgroup2 tree) or, on v2, "" to the cgroup's directory.
	dirs map[string]string

	mu sync.Mutex // orders Add, Update and Delete
}

// v1Required are the v1 hierarchies a sandbox cgroup needs: those of its
// limits, and cpuacct, which accounts CPU time.
var v1Required = []string{"memory", "cpu", "cpuacct", "pids"}

// v2Required are the v2 controllers a sandbox cgroup needs.
var v2Required = []string{"memory", "cpu", "pids"}

// newCgroup sets up the library's manager for path without touching the
// cgroupfs.
func newCgroup(path string) (*Cgroup, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	cfg := &cgroups.Cgroup{Path: path, Resources: Limits{}.resources()}
	m, err := manager.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", path, err)
	}
	c := &Cgroup{path: path, v2: cgroups.IsCgroup2UnifiedMode()}
	c.dirs = maps.Clone(m.GetPaths())
	if !c.v2 {
		// Leave the devices hierarchy alone (see the package doc). With
		// SkipDevices the library creates no directory there but still
		// lists it, so AddPid would fail on it.
		delete(c.dirs, "devices")
		var missing []string
		for _, h := range v1Required {
			if c.dirs[h] == "" {
				missing = append(missing, h)
			}
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("cgroup %s: cgroup v1 hierarchies not mounted: %s", path, strings.Join(missing, ", "))
		}
		if m, err = manager.NewWithPaths(cfg, maps.Clone(c.dirs)); err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", path, err)
		}
	}
	c.m = m
	return c, nil
}

// Create makes the sandbox cgroup at path (every v1 hierarchy but devices,
// or the v2 directory, see the package doc) and applies l. It is
// idempotent: after a crash, Create on the same path takes over whatever is
// there. When Create fails, it removes the directories if it made them.
func Create(ctx context.Context, path string, l Limits) (*Cgroup, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := l.validate(); err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", path, err)
	}
	c, err := newCgroup(path)
	if err != nil {
		return nil, err
	}
	existed := c.exists()
	if err := c.create(l); err != nil {
		if !existed {
			_ = cgroups.RemovePaths(maps.Clone(c.dirs))
		}
		return nil, fmt.Errorf("create cgroup %s: %w", path, err)
	}
	return c, nil
}

func (c *Cgroup) create(l Limits) error {
	// Apply(-1) creates the directories (copying cpuset.cpus and .mems
	// from the parent on v1, enabling controllers down to it on v2)
	// without moving anything in.
	if err := c.m.Apply(-1); err != nil {
		return err
	}
	if c.v2 {
		have, err := cgroups.ReadFile(c.dirs[""], "cgroup.controllers")
		if err != nil {
			return err
		}
		var missing []string
		for _, ctl := range v2Required {
			if !slices.Contains(strings.Fields(have), ctl) {
				missing = append(missing, ctl)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("cgroup v2 controllers not available in %s: %s", c.dirs[""], strings.Join(missing, ", "))
		}
	} else if err := c.checkUseHierarchy(); err != nil {
		return err
	}
	return c.set(l)
}

// checkUseHierarchy refuses a v1 memory cgroup that does not charge its
// ancestors: the pod's memory limit would not hold the VM. A child takes
// its parent's setting when created; since Linux 5.11 it is always 1.
func (c *Cgroup) checkUseHierarchy() error {
	v, err := cgroups.ReadFile(c.dirs["memory"], "memory.use_hierarchy")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if strings.TrimSpace(v) == "0" {
		return fmt.Errorf("memory.use_hierarchy is 0 in %s: its memory would not count against %s's limit (set memory.use_hierarchy=1 at the top of the memory hierarchy)",
			c.dirs["memory"], filepath.Dir(c.dirs["memory"]))
	}
	return nil
}

// exists reports whether any of the cgroup's directories exists.
func (c *Cgroup) exists() bool {
	for _, d := range c.dirs {
		if _, err := os.Stat(d); err == nil {
			return true
		}
	}
	return false
}

// Load returns the sandbox cgroup at path, without creating or changing
// anything: for cleanup after a shim crash. The cgroup need not exist.
func Load(path string) (*Cgroup, error) {
	return newCgroup(path)
}

// Path returns the cgroup's path below the cgroup root ("/veil/<id>").
func (c *Cgroup) Path() string { return c.path }

// Dirs returns the cgroup's directories: on v1, by hierarchy ("memory",
// "cpu", ..., "name=systemd", and "" for a hybrid host's cgroup2 tree); on
// v2, the one directory under "".
func (c *Cgroup) Dirs() map[string]string { return maps.Clone(c.dirs) }

// FilePath returns the cgroupfs path of a control file, or "" when the
// cgroup has no directory in that hierarchy: ("memory",
// "memory.limit_in_bytes") on v1, ("", "memory.max") on v2, where
// controller is ignored.
func (c *Cgroup) FilePath(controller, file string) string {
	if c.v2 {
		controller = ""
	}
	dir := c.dirs[controller]
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, file)
}

// V2 reports whether the cgroup is on cgroup v2 (unified mode).
func (c *Cgroup) V2() bool { return c.v2 }

// Add moves the process pid, its whole thread group, into the cgroup in
// every hierarchy. What it allocates from then on is charged to the cgroup.
func (c *Cgroup) Add(pid int) error {
	if pid <= 0 {
		// 0 would move the writer itself, -1 nothing.
		return fmt.Errorf("cgroup %s: bad pid %d", c.path, pid)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.m.AddPid("", pid); err != nil {
		return fmt.Errorf("cgroup %s: add pid %d: %w", c.path, pid, err)
	}
	return nil
}

// Update applies l, lifting the limits it leaves at 0.
func (c *Cgroup) Update(l Limits) error {
	if err := l.validate(); err != nil {
		return fmt.Errorf("cgroup %s: %w", c.path, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.set(l); err != nil {
		return fmt.Errorf("update cgroup %s: %w", c.path, err)
	}
	return nil
}

func (c *Cgroup) set(l Limits) error {
	r := l.resources()
	if !c.v2 {
		mnt := strings.TrimSuffix(c.dirs["cpu"], c.path)
		q, err := v1Quota(mnt, c.path, r.CpuQuota)
		if err != nil {
			return err
		}
		r.CpuQuota = q
	}
	return c.m.Set(r)
}

// Pids returns the processes in the cgroup (or a cgroup below it), in any
// hierarchy, sorted. A hierarchy whose directory is gone, or is removed
// while it is read, holds none.
func (c *Cgroup) Pids() ([]int, error) {
	var all []int
	for _, d := range c.dirs {
		pids, err := cgroups.GetAllPids(d)
		if errors.Is(err, unix.ENODEV) {
			// Read again: a cgroup removed under the walk (another
			// process deleting the same sandbox) makes its cgroup.procs
			// unreadable; the directory is then gone, or what is left
			// of the subtree is read as it is now.
			pids, err = cgroups.GetAllPids(d)
		}
		if removed(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", c.path, err)
		}
		all = append(all, pids...)
	}
	slices.Sort(all)
	return slices.Compact(all), nil
}

// removed reports whether err is what reading a cgroup that was removed
// meanwhile returns: ENODEV from its cgroup.procs, or ENOENT from the walk.
func removed(err error) bool {
	return errors.Is(err, unix.ENODEV) || errors.Is(err, os.ErrNotExist)
}
