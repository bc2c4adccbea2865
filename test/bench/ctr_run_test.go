package bench

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkCtrRunFirstOutput: `ctr run --rm ... echo` from launch to the
// first byte of output on the host, median of 5, for Veil and for runc
// through the same containerd.
func BenchmarkCtrRunFirstOutput(b *testing.B) {
	c, _ := startContainerd(b)
	const runs = 5
	results := map[string]time.Duration{}
	for _, rt := range []struct{ name, runtime string }{{"veil", veilRuntime}, {"runc", runcRuntime}} {
		var firsts []time.Duration
		for i := range runs {
			r := runTimed(b, c, rt.runtime, fmt.Sprintf("bench-first-%s-%d", rt.name, i), "echo", "ready")
			firsts = append(firsts, r.firstOutput)
		}
		m := median(firsts)
		results[rt.name] = m
		b.ReportMetric(m.Seconds(), rt.name+"_first_output_s")
		b.Logf("ctr run --rm to first output, %s: median %v of %v", rt.name, m, firsts)
	}
	b.Logf("ctr run to first output: veil %v, runc %v (%.1fx)", results["veil"], results["runc"], float64(results["veil"])/float64(results["runc"]))
}
