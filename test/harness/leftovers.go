package harness

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Leftovers lists what a sandbox left behind: host processes whose command
// line names its state directory, the directory itself, and mounts whose
// path mentions the id.
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
		if strings.Contains(args, dir+"/") || strings.HasSuffix(strings.TrimSpace(args), dir) {
			out = append(out, "process "+e.Name()+": "+args)
		}
	}
	if _, err := os.Stat(dir); err == nil {
		out = append(out, "state dir "+dir)
	}
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
