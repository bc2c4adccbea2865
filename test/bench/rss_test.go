package bench

import (
	"bufio"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/veil-runtime/veil/test/integration"
)

// fillMiB is what the container writes to its /dev/shm (a tmpfs in guest
// memory, 64 MiB by default) and removes, to see whether the host gets
// the guest's freed memory back.
const fillMiB = 60

// BenchmarkSandboxRSS reports the host memory of each process of one
// running single-container sandbox (the shim, QEMU, virtiofsd,
// vhost-device-vsock): its RSS split into anonymous, file and shared
// memory, idle and again after the container wrote fillMiB to a tmpfs and
// removed it (the guest's free page reporting gives it back), and, while a
// second sandbox runs and shares the binaries' pages, its PSS (shared
// pages divided among the processes that map them) and USS (its private
// pages only: what one more sandbox costs the host, at least).
func BenchmarkSandboxRSS(b *testing.B) {
	c, cfg := startContainerd(b)
	ids := []string{"bench-rss", "bench-rss-2"}
	for _, id := range ids {
		mustCtr(b, c, "run", "-d", "--runtime", veilRuntime, imageRef, id, "sleep", "1000")
		b.Cleanup(func() {
			// --force kills the task and waits for its exit before deleting.
			mustCtr(b, c, "task", "delete", "--force", id)
			mustCtr(b, c, "containers", "delete", id)
		})
	}
	id := ids[0]
	pids := sandboxPids(cfg.StateDir, id)
	if pids["shim"] == 0 || len(pids) < 3 {
		b.Fatalf("found only %v", pids)
	}
	idle := settledMemory(b, pids)
	mustCtr(b, c, "task", "exec", "--exec-id", "fill", id, "sh", "-c",
		fmt.Sprintf("dd if=/dev/zero of=/dev/shm/fill bs=1M count=%d 2>/dev/null && rm /dev/shm/fill", fillMiB))
	freed := settledMemory(b, pids)

	var lines []string
	for _, n := range slices.Sorted(maps.Keys(pids)) {
		i, f := idle[n], freed[n]
		b.ReportMetric(i.rss(), n+"_MiB")
		b.ReportMetric(i.pss, n+"_pss_MiB")
		b.ReportMetric(i.uss, n+"_uss_MiB")
		b.ReportMetric(f.rss(), n+"_after_fill_MiB")
		lines = append(lines, fmt.Sprintf("  %-20s %6.1f (%5.1f anon %5.1f file %5.1f shmem)  %6.1f  %6.1f  %6.1f (%5.1f anon %5.1f file %5.1f shmem)",
			n, i.rss(), i.anon, i.file, i.shmem, i.pss, i.uss, f.rss(), f.anon, f.file, f.shmem))
	}
	it, ft := sum(idle, memory.rss), sum(freed, memory.rss)
	ip := sum(idle, func(m memory) float64 { return m.pss })
	iu := sum(idle, func(m memory) float64 { return m.uss })
	b.ReportMetric(it, "total_MiB")
	b.ReportMetric(ip, "total_pss_MiB")
	b.ReportMetric(iu, "total_uss_MiB")
	b.ReportMetric(ft, "total_after_fill_MiB")
	// The table goes to stdout: a benchmark's log is cut at a few lines.
	fmt.Printf("BenchmarkSandboxRSS: host memory of one sandbox, MiB: idle RSS, idle PSS and USS (a second sandbox running), RSS after %d MiB written to the guest's tmpfs and removed\n%s\n  %-20s %6.1f %45.1f  %6.1f  %6.1f\n",
		fillMiB, strings.Join(lines, "\n"), "total", it, ip, iu, ft)
}

// sandboxPids are the sandbox's processes by name: each pid file in its
// state directory, and the shim.
func sandboxPids(stateDir, id string) map[string]int {
	pids := map[string]int{}
	files, _ := filepath.Glob(filepath.Join(stateDir, id, "*.pid"))
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
	return pids
}

// memory is one process's resident memory in MiB: RSS by kind, PSS
// (shared pages divided among the processes that map them) and USS (its
// private pages).
type memory struct{ anon, file, shmem, pss, uss float64 }

func (m memory) rss() float64 { return m.anon + m.file + m.shmem }

func sum(ms map[string]memory, f func(memory) float64) float64 {
	var t float64
	for _, m := range ms {
		t += f(m)
	}
	return t
}

// settledMemory samples the processes' memory every half second until the
// total moved less than 0.5 MiB over settleSamples samples (4.5 s: a
// guest reports pages it freed two seconds after, in batches), or 60 s
// passed, which it logs.
func settledMemory(b *testing.B, pids map[string]int) map[string]memory {
	b.Helper()
	var last []float64
	const settleSamples = 10
	deadline := time.Now().Add(time.Minute)
	for {
		cur := map[string]memory{}
		for name, pid := range pids {
			r, err := readMemory(pid)
			if err != nil {
				b.Fatalf("%s (pid %d): %v", name, pid, err)
			}
			cur[name] = r
		}
		last = append(last, sum(cur, memory.rss))
		if n := len(last); n >= settleSamples && slices.Max(last[n-settleSamples:])-slices.Min(last[n-settleSamples:]) < 0.5 {
			return cur
		}
		if time.Now().After(deadline) {
			b.Logf("memory still moving after a minute: the last totals %.1f MiB", last[max(0, len(last)-settleSamples):])
			return cur
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// readMemory reads RssAnon, RssFile and RssShmem from
// /proc/<pid>/status, and Pss, Private_Clean and Private_Dirty from
// /proc/<pid>/smaps_rollup.
func readMemory(pid int) (memory, error) {
	var m memory
	if err := readKB(fmt.Sprintf("/proc/%d/status", pid), map[string]*float64{"RssAnon:": &m.anon, "RssFile:": &m.file, "RssShmem:": &m.shmem}); err != nil {
		return memory{}, err
	}
	var clean, dirty float64
	if err := readKB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), map[string]*float64{"Pss:": &m.pss, "Private_Clean:": &clean, "Private_Dirty:": &dirty}); err != nil {
		return memory{}, err
	}
	m.uss = clean + dirty
	return m, nil
}

// readKB sets each field of a /proc file of "Name: <n> kB" lines, in MiB.
func readKB(path string, fields map[string]*float64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	seen := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if p := fields[k+":"]; ok && p != nil {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return fmt.Errorf("%s %s %q: %w", path, k, v, err)
			}
			*p = float64(kb) / 1024
			seen++
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if seen != len(fields) {
		return fmt.Errorf("%s lacks one of %d fields", path, len(fields))
	}
	return nil
}
