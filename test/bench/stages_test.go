package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/sandbox"
	"github.com/veil-runtime/veil/runtime/statedir"
	"github.com/veil-runtime/veil/test/integration"
)

// stageSamples is how many cold starts the breakdown takes the median of.
const stageSamples = 3

// BenchmarkColdStartStages breaks a sandbox's cold start down by stage:
// each host step of sandbox.Start as it timed it, and the boot (from the
// end of "start VM" to the agent's ready notification) split with the
// guest's own clock, which the agent's console lines carry (seconds since
// the kernel started): VM launch to kernel start (the vsock daemon, the
// VMM's own start, loading the kernel and initramfs), kernel to PID 1,
// PID 1's setup, setup to the agent serving. The median of each over a
// few starts.
func BenchmarkColdStartStages(b *testing.B) {
	integration.Require(b, integration.Root, integration.VM)
	cfg, _ := veilConfig(b)
	samples := map[string][]time.Duration{}
	var order []string
	add := func(name string, d time.Duration) {
		if _, ok := samples[name]; !ok {
			order = append(order, name)
		}
		samples[name] = append(samples[name], d)
	}
	for i := range stageSamples {
		stages, guest := coldStart(b, cfg, fmt.Sprintf("bench-stages-%d", i))
		var vm time.Duration
		for _, st := range stages {
			add(st.Name, st.Took)
			if st.Name == "start VM" || st.Name == sandbox.StageBoot {
				vm += st.Took
			}
		}
		add("  VM launch to kernel start", vm-guest.serving)
		add("  kernel start to PID 1", guest.pid1)
		add("  PID 1 setup", guest.setUp-guest.pid1)
		add("  setup to agent serving", guest.serving-guest.setUp)
	}
	var total time.Duration
	var table strings.Builder
	for _, name := range order {
		m := median(samples[name])
		if !strings.HasPrefix(name, "  ") {
			total += m
		}
		fmt.Fprintf(&table, "  %-45s %8.3f s\n", name, m.Seconds())
		if strings.HasPrefix(name, "  ") || name == sandbox.StageBoot || name == "start VM" {
			b.ReportMetric(m.Seconds(), metricName(name)+"_s")
		}
	}
	fmt.Fprintf(&table, "  %-45s %8.3f s\n", "total (sum of the step medians)", total.Seconds())
	b.ReportMetric(total.Seconds(), "total_s")
	// The table goes to stdout: a benchmark's log is cut at a few lines.
	fmt.Printf("BenchmarkColdStartStages: sandbox cold start by stage, median of %d (indented: the boot split by the guest's clock):\n%s", stageSamples, table.String())
}

// metricName makes a stage name a benchmark unit.
func metricName(s string) string {
	return strings.Trim(regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(s), "_"), "_")
}

// guestClock is when the agent logged its boot lines, on the guest's
// clock (since the kernel started).
type guestClock struct{ pid1, setUp, serving time.Duration }

var (
	pid1Line    = regexp.MustCompile(`pid 1 started ([0-9.]+)s after kernel start`)
	setUpLine   = regexp.MustCompile(`guest set up ([0-9.]+)s after kernel start`)
	servingLine = regexp.MustCompile(`agent serving.*uptime="?([0-9.]+)`)
)

// coldStart starts sandbox id, reads its stages and the guest's boot
// lines from its console log, and stops it.
func coldStart(b *testing.B, cfg *config.Config, id string) ([]sandbox.Stage, guestClock) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_ = sandbox.Cleanup(ctx, cfg, id)
	s, err := sandbox.Start(ctx, id, cfg, sandbox.Options{Hostname: id})
	if err != nil {
		b.Fatalf("sandbox start: %v", err)
	}
	defer func() {
		if err := s.Stop(ctx); err != nil {
			b.Errorf("sandbox stop: %v", err)
		}
	}()
	log, err := os.ReadFile(filepath.Join(s.Dir(), statedir.ConsoleLog))
	if err != nil {
		b.Fatal(err)
	}
	var g guestClock
	for _, f := range []struct {
		re  *regexp.Regexp
		dst *time.Duration
	}{{pid1Line, &g.pid1}, {setUpLine, &g.setUp}, {servingLine, &g.serving}} {
		m := f.re.FindSubmatch(log)
		if m == nil {
			b.Fatalf("console log of %s has no line matching %q", id, f.re)
		}
		sec, err := strconv.ParseFloat(string(m[1]), 64)
		if err != nil {
			b.Fatal(err)
		}
		*f.dst = time.Duration(sec * float64(time.Second))
	}
	return s.StartStages(), g
}
