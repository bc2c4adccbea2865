package container

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// CgroupPaths maps the id of every container that has a cgroup to its
// cgroup v2 directory.
func (m *Manager) CgroupPaths() map[string]string {
	m.mu.Lock()
	cs := make([]*container, 0, len(m.containers))
	for _, c := range m.containers {
		cs = append(cs, c)
	}
	m.mu.Unlock()
	paths := make(map[string]string, len(cs))
	for _, c := range cs {
		if p := c.cgroupPath(); p != "" {
			paths[c.id] = p
		}
	}
	return paths
}

// cgroupPath is the container's unified (cgroup v2) directory, or "" when
// the container is not created yet or has none.
func (c *container) cgroupPath() string {
	c.mu.Lock()
	b := c.box
	c.mu.Unlock()
	if b == nil {
		return ""
	}
	return b.cgroupPath()
}

// oomKilled reports whether the kernel's OOM killer killed a process of
// the cgroup v2 directory dir: memory.events counts oom_kill.
func oomKilled(dir string) bool {
	if dir == "" {
		return false
	}
	b, err := os.ReadFile(filepath.Join(dir, "memory.events"))
	if err != nil {
		return false
	}
	return ParseFlatKeyed(string(b))["oom_kill"] > 0
}

// ParseFlatKeyed parses a cgroup v2 flat-keyed file ("key value" lines,
// such as cpu.stat and memory.events); lines that do not parse are
// skipped.
func ParseFlatKeyed(s string) map[string]uint64 {
	m := map[string]uint64{}
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		if v, err := strconv.ParseUint(f[1], 10, 64); err == nil {
			m[f[0]] = v
		}
	}
	return m
}

// ExecRecords counts, per container, the exec processes the manager
// keeps a record of (running, or exited and not yet removed).
func (m *Manager) ExecRecords() map[string]int {
	m.mu.Lock()
	cs := make([]*container, 0, len(m.containers))
	for _, c := range m.containers {
		cs = append(cs, c)
	}
	m.mu.Unlock()
	out := make(map[string]int, len(cs))
	for _, c := range cs {
		c.mu.Lock()
		out[c.id] = len(c.execs)
		c.mu.Unlock()
	}
	return out
}
