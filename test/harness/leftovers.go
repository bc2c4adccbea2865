package harness

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Leftovers lists what a sandbox left behind: host processes whose command
// line names its state directory (or QEMU's -name veil-<id>) or whose
// cgroup is the sandbox's, the directory itself, cgroups named by the
// id, and mounts whose path mentions the id.
func Leftovers(stateDir, id string) []string {
	var out []string
	dir := filepath.Join(stateDir, id)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
		if strings.Contains(args, dir+"/") || strings.HasSuffix(strings.TrimSpace(args), dir) || strings.Contains(args, " veil-"+id+" ") {
			out = append(out, "process "+e.Name()+": "+args)
			continue
		}
		// Jailed helpers name no host path; their cgroup names the
		// sandbox.
		if cg, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup")); err == nil && cgroupNames(string(cg), id) {
			out = append(out, "process "+e.Name()+" in the sandbox cgroup: "+args)
		}
	}
	if _, err := os.Lstat(dir); err == nil {
		out = append(out, "state dir "+dir)
	}
	out = append(out, cgroupDirs(id)...)
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(mi), "\n") {
			fields := strings.Fields(line)
			if len(fields) > 4 && strings.Contains(fields[4], "/"+id+"/") || len(fields) > 4 && strings.HasSuffix(fields[4], "/"+id) {
				out = append(out, "mount "+fields[4])
			}
		}
	}
	return out
}

// cgroupNames reports a /proc/<pid>/cgroup whose paths end in id.
func cgroupNames(procCgroup, id string) bool {
	for _, l := range strings.Split(procCgroup, "\n") {
		if strings.HasSuffix(l, "/"+id) {
			return true
		}
	}
	return false
}

// cgroupDirs lists cgroup directories named id in the host's
// hierarchies.
func cgroupDirs(id string) []string {
	var out []string
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		roots = []string{"/sys/fs/cgroup"}
	}
	for _, root := range roots {
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil //nolint:nilerr // a best-effort scan: skip what cannot be read
			}
			if d.Name() == id {
				out = append(out, "cgroup "+p)
				return filepath.SkipDir
			}
			return nil
		})
	}
	return out
}
