package bench

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/veil-runtime/veil/test/harness"
)

// BenchmarkCtrRunStages breaks `ctr run --rm ... echo` on Veil down by
// stage, from the shim's log lines in containerd's log (their times and
// the durations they carry) and the first output byte ctr delivers:
// ctr, containerd and the shim up to the sandbox start; the sandbox start
// (BenchmarkColdStartStages breaks it down); the rootfs share and the
// agent's CreateContainer; back to ctr and its Start call; StartContainer
// (runc in the guest); the first byte reaching ctr. Median of 3.
func BenchmarkCtrRunStages(b *testing.B) {
	c, _ := startContainerd(b)
	const runs = 3
	stages := []string{"ctr, containerd, shim start to sandbox start", "sandbox start", "rootfs share and CreateContainer", "ctr's Start call reaches the shim", "StartContainer (runc in the guest)", "first byte to ctr"}
	samples := map[string][]time.Duration{}
	for i := range runs {
		id := fmt.Sprintf("bench-stages-ctr-%d", i)
		r := runTimed(b, c, veilRuntime, id, "echo", "ready")
		ev, err := shimEvents(c, id)
		if err != nil {
			b.Fatal(err)
		}
		sbBegan := ev.sandboxStarted.Add(-ev.sandboxTook)
		startBegan := ev.containerStarted.Add(-ev.startTook)
		first := r.started.Add(r.firstOutput)
		for j, d := range []time.Duration{
			sbBegan.Sub(r.started), ev.sandboxTook, ev.created.Sub(ev.sandboxStarted),
			startBegan.Sub(ev.created), ev.startTook, first.Sub(ev.containerStarted),
		} {
			samples[stages[j]] = append(samples[stages[j]], d)
		}
		samples["first output"] = append(samples["first output"], r.firstOutput)
	}
	var table strings.Builder
	for _, name := range append(stages, "first output") {
		m := median(samples[name])
		fmt.Fprintf(&table, "  %-45s %8.3f s\n", name, m.Seconds())
		b.ReportMetric(m.Seconds(), metricName(name)+"_s")
	}
	fmt.Printf("BenchmarkCtrRunStages: ctr run --rm on Veil by stage, median of %d:\n%s", runs, table.String())
}

// ctrRunEvents are the shim's log lines of one `ctr run`.
type ctrRunEvents struct {
	sandboxStarted, created, containerStarted time.Time
	sandboxTook, startTook                    time.Duration
}

var (
	logTime = regexp.MustCompile(`time="([^"]+)"`)
	logTook = regexp.MustCompile(`took=([0-9.]+[a-zµ]+)`)
)

// shimEvents reads containerd's log (the shim's lines are copied into it)
// for container id's "sandbox started", "container created" and
// "container started" lines.
func shimEvents(c *harness.Containerd, id string) (ctrRunEvents, error) {
	var ev ctrRunEvents
	f, err := os.Open(c.LogPath)
	if err != nil {
		return ev, err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var dst *time.Time
		var took *time.Duration
		switch {
		case strings.Contains(line, `msg="sandbox started"`) && strings.Contains(line, "sandbox="+id+" ") && logTook.MatchString(line) && !strings.Contains(line, "total="):
			dst, took = &ev.sandboxStarted, &ev.sandboxTook
		case strings.Contains(line, `msg="container created"`) && strings.Contains(line, "container="+id+" "):
			dst = &ev.created
		case strings.Contains(line, `msg="container started"`) && strings.Contains(line, "container="+id+" "):
			dst, took = &ev.containerStarted, &ev.startTook
		default:
			continue
		}
		m := logTime.FindStringSubmatch(line)
		if m == nil {
			return ev, fmt.Errorf("no time in %q", line)
		}
		t, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			return ev, err
		}
		*dst = t
		if took != nil {
			d, err := time.ParseDuration(logTook.FindStringSubmatch(line)[1])
			if err != nil {
				return ev, err
			}
			*took = d
		}
	}
	if err := sc.Err(); err != nil {
		return ev, err
	}
	if ev.sandboxStarted.IsZero() || ev.created.IsZero() || ev.containerStarted.IsZero() {
		return ev, fmt.Errorf("containerd log %s lacks the shim's lines for %s: %+v", c.LogPath, id, ev)
	}
	return ev, nil
}
