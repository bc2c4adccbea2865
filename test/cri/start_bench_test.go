package cri

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/veil-runtime/veil/test/harness"
)

// podStarts is how many pods each handler starts; the median is reported.
const podStarts = 5

// BenchmarkPodStart measures RunPodSandbox to container running (the
// StartContainer answer) through containerd's CRI plugin, for runc and
// veil in the same containerd, one pod at a time.
func BenchmarkPodStart(b *testing.B) {
	f := newFixture(b)
	for i := 0; i < b.N; i++ {
		for _, handler := range []string{harness.HandlerRunc, harness.HandlerVeil} {
			var took []time.Duration
			for n := 0; n < podStarts; n++ {
				name := fmt.Sprintf("start-%s-%d-%d", handler, i, n)
				cfg := f.podConfig(name)
				start := time.Now()
				pod := f.runPod(b, handler, cfg)
				f.startContainer(b, pod, cfg, shContainer("c", `while true; do sleep 1; done`))
				took = append(took, time.Since(start))
				f.removePod(b, pod, handler)
			}
			slices.Sort(took)
			med := took[len(took)/2]
			b.Logf("RunPodSandbox to container running, %s: median %s of %v", handler, med, took)
			b.ReportMetric(med.Seconds(), handler+"_pod_start_s")
		}
	}
}
