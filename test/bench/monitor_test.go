package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/veil-runtime/veil/test/harness"
)

// monitorScrapes is how many scrapes each step times; the median is
// reported.
const monitorScrapes = 10

// BenchmarkMonitor reports `veil monitor`'s scrape time and its own
// memory with 1, 5 and 10 running sandboxes (ctr run, one container
// each). Targets: at most 100 ms per sandbox under TCG here; RSS at most
// 30 MiB.
func BenchmarkMonitor(b *testing.B) {
	c, _ := startContainerd(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	m, err := harness.StartMonitor(ctx, harness.ConfigPath(), filepath.Join(b.TempDir(), "monitor.log"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := m.Stop(sctx); err != nil {
			b.Error(err)
		}
	})
	var lines []string
	running := 0
	for _, n := range []int{1, 5, 10} {
		for ; running < n; running++ {
			id := fmt.Sprintf("bench-mon-%d", running)
			mustCtr(b, c, "run", "-d", "--runtime", veilRuntime, imageRef, id, "sleep", "1000")
			b.Cleanup(func() {
				mustCtr(b, c, "task", "delete", "--force", id)
				mustCtr(b, c, "containers", "delete", id)
			})
		}
		// One scrape to settle (first connections, page cache), checked
		// to have read every guest.
		fams, _, err := m.Scrape(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if v, ok := harness.Series(fams, "veil_monitor_sandboxes", nil); !ok || int(v) != n {
			b.Fatalf("monitor found %v sandboxes (present %v), want %d", v, ok, n)
		}
		var took []time.Duration
		for range monitorScrapes {
			began := time.Now()
			fams, _, err := m.Scrape(ctx)
			took = append(took, time.Since(began))
			if err != nil {
				b.Fatal(err)
			}
			for i := range n {
				id := fmt.Sprintf("bench-mon-%d", i)
				if v, ok := harness.Series(fams, "veil_sandbox_scrape_success", map[string]string{"sandbox_id": id, "source": "guest"}); !ok || v != 1 {
					b.Fatalf("sandbox %s: guest not read (%v, present %v)", id, v, ok)
				}
			}
		}
		slices.Sort(took)
		med := took[len(took)/2]
		rss, hwm := procStatusKiB(b, m.Pid(), "VmRSS"), procStatusKiB(b, m.Pid(), "VmHWM")
		perSandbox := med / time.Duration(n)
		b.ReportMetric(ms(med), fmt.Sprintf("scrape_ms_%d", n))
		b.ReportMetric(ms(perSandbox), fmt.Sprintf("ms_per_sandbox_%d", n))
		b.ReportMetric(rss/1024, fmt.Sprintf("rss_MiB_%d", n))
		lines = append(lines, fmt.Sprintf("  %2d sandboxes: scrape median %6.1f ms (min %6.1f, max %6.1f), %5.1f ms per sandbox; monitor RSS %5.1f MiB (peak %5.1f)",
			n, ms(med), ms(took[0]), ms(took[len(took)-1]), ms(perSandbox), rss/1024, hwm/1024))
	}
	// The table goes to stdout: a benchmark's log is cut at a few lines.
	fmt.Printf("BenchmarkMonitor: veil monitor, %d HTTP scrapes per step (targets: ≤ 100 ms per sandbox, RSS ≤ 30 MiB)\n%s\n", monitorScrapes, strings.Join(lines, "\n"))
}

// procStatusKiB reads a "<key>: <n> kB" line of /proc/<pid>/status.
func procStatusKiB(b *testing.B, pid int, key string) float64 {
	b.Helper()
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(st), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == key {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, err := strconv.ParseFloat(f[0], 64)
				if err == nil {
					return n
				}
			}
		}
	}
	b.Fatalf("no %s in /proc/%d/status", key, pid)
	return 0
}
