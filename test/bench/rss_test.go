package bench

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/veil-runtime/veil/test/integration"
)

// BenchmarkSandboxRSS reports the host memory (VmRSS) of one running
// single-container sandbox: the shim, QEMU, virtiofsd, vhost-device-vsock.
func BenchmarkSandboxRSS(b *testing.B) {
	c, cfg := startContainerd(b)
	const id = "bench-rss"
	mustCtr(b, c, "run", "-d", "--runtime", veilRuntime, imageRef, id, "sleep", "1000")
	b.Cleanup(func() {
		// --force kills the task and waits for its exit before deleting.
		mustCtr(b, c, "task", "delete", "--force", id)
		mustCtr(b, c, "containers", "delete", id)
	})
	pids := map[string]int{}
	files, _ := filepath.Glob(filepath.Join(cfg.StateDir, id, "*.pid"))
	for _, f := range files {
		bs, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(bs))); err == nil {
			pids[strings.TrimSuffix(filepath.Base(f), ".pid")] = pid
		}
	}
	if pid := integration.ShimPid(id); pid > 0 {
		pids["shim"] = pid
	}
	var total int64
	var parts []string
	for name, pid := range pids {
		kb, err := vmRSS(pid)
		if err != nil {
			b.Fatalf("%s (pid %d): %v", name, pid, err)
		}
		total += kb
		b.ReportMetric(float64(kb)/1024, name+"_MiB")
		parts = append(parts, fmt.Sprintf("%s %.1f MiB", name, float64(kb)/1024))
	}
	if pids["shim"] == 0 || len(pids) < 3 {
		b.Fatalf("found only %v", pids)
	}
	b.ReportMetric(float64(total)/1024, "total_MiB")
	b.Logf("host RSS of one sandbox: %s; total %.1f MiB", strings.Join(parts, ", "), float64(total)/1024)
}

// vmRSS reads VmRSS (kB) from /proc/<pid>/status.
func vmRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
