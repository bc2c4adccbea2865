package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/agent/container"
)

// userHZ is the kernel's USER_HZ, the unit of /proc/stat's CPU times; it
// is 100 on every Linux architecture Veil runs on.
const userHZ = 100

// ContainerCgroups is what Stats needs from the container manager.
type ContainerCgroups interface {
	// CgroupPaths maps each container's id to its cgroup v2 directory
	// (an absolute path under /sys/fs/cgroup).
	CgroupPaths() map[string]string
}

// Stats reports guest memory, CPU, load, uptime and per-container cgroup
// statistics.
func (s *Service) Stats(ctx context.Context, _ *api.StatsRequest) (*api.StatsResponse, error) {
	var cgroups map[string]string
	if cg, ok := s.containers.(ContainerCgroups); ok {
		cgroups = cg.CgroupPaths()
	}
	resp, err := ReadStats(s.procRoot, cgroups)
	if err == nil {
		if ec, ok := s.containers.(ExecCounter); ok {
			counts := ec.ExecRecords()
			for _, c := range resp.Containers {
				c.ExecRecords = uint32(counts[c.ContainerId])
			}
		}
	}
	return resp, toStatus(err)
}

// ExecCounter is a container manager that reports, per container, how
// many exec records it keeps (StatsResponse's exec_records).
type ExecCounter interface {
	ExecRecords() map[string]int
}

// ReadStats reads the guest's statistics from procRoot (normally /proc)
// and each container's from its cgroup directory. A container whose
// cgroup cannot be read gets an error string instead of failing the call.
func ReadStats(procRoot string, cgroups map[string]string) (*api.StatsResponse, error) {
	resp := &api.StatsResponse{}
	if err := readMeminfo(filepath.Join(procRoot, "meminfo"), resp); err != nil {
		return nil, err
	}
	cpu, err := readCPU(filepath.Join(procRoot, "stat"))
	if err != nil {
		return nil, err
	}
	resp.Cpu = cpu
	if err := readLoad(filepath.Join(procRoot, "loadavg"), resp); err != nil {
		return nil, err
	}
	if err := readUptime(filepath.Join(procRoot, "uptime"), resp); err != nil {
		return nil, err
	}
	if resp.Processes, err = countProcesses(procRoot); err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(cgroups))
	for id := range cgroups {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		resp.Containers = append(resp.Containers, readContainerStats(id, cgroups[id]))
	}
	return resp, nil
}

func readMeminfo(path string, resp *api.StatsResponse) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	found := 0
	for _, line := range strings.Split(string(b), "\n") {
		key, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return fmt.Errorf("stats: %s: %s: %w", path, key, err)
		}
		if len(f) > 1 && f[1] == "kB" {
			v *= 1024
		}
		switch key {
		case "MemTotal":
			resp.MemoryTotalBytes = v
			found++
		case "MemAvailable":
			resp.MemoryAvailableBytes = v
			found++
		}
	}
	if found != 2 {
		return fmt.Errorf("stats: %s lacks MemTotal or MemAvailable", path)
	}
	return nil
}

func readCPU(path string) (*api.CPUStats, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	defer func() { _ = f.Close() }()
	cpu := &api.CPUStats{}
	seen := false
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		switch {
		case fields[0] == "cpu":
			var v [8]uint64
			for i := 0; i < len(v) && i+1 < len(fields); i++ {
				n, err := strconv.ParseUint(fields[i+1], 10, 64)
				if err != nil {
					return nil, fmt.Errorf("stats: %s: cpu field %d: %w", path, i+1, err)
				}
				v[i] = n * (1_000_000 / userHZ)
			}
			cpu.UserUsec, cpu.NiceUsec, cpu.SystemUsec, cpu.IdleUsec = v[0], v[1], v[2], v[3]
			cpu.IowaitUsec, cpu.IrqUsec, cpu.SoftirqUsec, cpu.StealUsec = v[4], v[5], v[6], v[7]
			seen = true
		case strings.HasPrefix(fields[0], "cpu"):
			cpu.Online++
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("stats: read %s: %w", path, err)
	}
	if !seen {
		return nil, fmt.Errorf("stats: %s has no cpu line", path)
	}
	return cpu, nil
}

func readLoad(path string, resp *api.StatsResponse) error {
	f, err := readFields(path, 3)
	if err != nil {
		return err
	}
	loads := []*float64{&resp.Load1, &resp.Load5, &resp.Load15}
	for i, p := range loads {
		if *p, err = strconv.ParseFloat(f[i], 64); err != nil {
			return fmt.Errorf("stats: %s: %w", path, err)
		}
	}
	// The fourth field is runnable/all scheduling entities.
	if len(f) > 3 {
		if running, all, ok := strings.Cut(f[3], "/"); ok {
			r, err1 := strconv.ParseUint(running, 10, 32)
			a, err2 := strconv.ParseUint(all, 10, 32)
			if err := errors.Join(err1, err2); err != nil {
				return fmt.Errorf("stats: %s: tasks %q: %w", path, f[3], err)
			}
			resp.TasksRunning, resp.Tasks = uint32(r), uint32(a)
		}
	}
	return nil
}

// countProcesses counts the numeric entries of procRoot.
func countProcesses(procRoot string) (uint32, error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return 0, fmt.Errorf("stats: %w", err)
	}
	var n uint32
	for _, e := range ents {
		if _, err := strconv.ParseUint(e.Name(), 10, 32); err == nil && e.IsDir() {
			n++
		}
	}
	return n, nil
}

func readUptime(path string, resp *api.StatsResponse) error {
	f, err := readFields(path, 1)
	if err != nil {
		return err
	}
	if resp.UptimeSeconds, err = strconv.ParseFloat(f[0], 64); err != nil {
		return fmt.Errorf("stats: %s: %w", path, err)
	}
	return nil
}

func readFields(path string, atLeast int) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) < atLeast {
		return nil, fmt.Errorf("stats: %s: %d fields, want at least %d", path, len(f), atLeast)
	}
	return f, nil
}

// readContainerStats reads cpu.stat, memory.current, memory.max and
// pids.current of one cgroup v2 directory.
func readContainerStats(id, dir string) *api.ContainerStats {
	cs := &api.ContainerStats{ContainerId: id, Cgroup: dir}
	var errs []error
	if b, err := os.ReadFile(filepath.Join(dir, "cpu.stat")); err != nil {
		errs = append(errs, err)
	} else {
		st := container.ParseFlatKeyed(string(b))
		cs.CpuUsageUsec, cs.CpuUserUsec, cs.CpuSystemUsec = st["usage_usec"], st["user_usec"], st["system_usec"]
	}
	for _, v := range []struct {
		file string
		dst  *uint64
	}{
		{"memory.current", &cs.MemoryCurrentBytes},
		{"memory.max", &cs.MemoryLimitBytes},
		{"pids.current", &cs.PidsCurrent},
	} {
		n, err := readCgroupUint(filepath.Join(dir, v.file))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		*v.dst = n
	}
	if b, err := os.ReadFile(filepath.Join(dir, "memory.events")); err != nil {
		errs = append(errs, err)
	} else {
		cs.MemoryEvents = parseMemoryEvents(string(b))
	}
	if err := errors.Join(errs...); err != nil {
		cs.Error = strings.ReplaceAll(err.Error(), "\n", "; ")
	}
	return cs
}

// parseMemoryEvents reads the counters of a memory.events file.
func parseMemoryEvents(s string) *api.MemoryEvents {
	ev := container.ParseFlatKeyed(s)
	return &api.MemoryEvents{Low: ev["low"], High: ev["high"], Max: ev["max"], Oom: ev["oom"], OomKill: ev["oom_kill"]}
}

// readCgroupUint reads a single-value cgroup file; "max" reads as 0.
func readCgroupUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}
