package container

// CgroupPaths maps the id of every container that has a cgroup to its
// cgroup v2 directory, as libcontainer's state records it.
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
	lc := c.lc
	c.mu.Unlock()
	if lc == nil {
		return ""
	}
	st, err := lc.State()
	if err != nil {
		return ""
	}
	// On cgroup v2 the manager reports the single unified path under "".
	return st.CgroupPaths[""]
}
