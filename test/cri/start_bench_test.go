package cri

import (
	"context"
	"fmt"
	"slices"
	"strconv"
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

// BenchmarkPodStartWarm measures RunPodSandbox to container running for
// veil pods from the warm pool (one VM of one NIC, full and idle before
// each start) and cold (the pod asks for 4 MiB more than the pool's VMs,
// so none fits), alternating in one containerd. Target: warm ≤ 0.4 ×
// cold.
func BenchmarkPodStartWarm(b *testing.B) {
	f := newFixture(b, WarmPool(1))
	mem := strconv.Itoa(int(f.shared.Config.Guest.MemoryMiB) + 4)
	var warm, cold []time.Duration
	for n := 0; n < podStarts; n++ {
		for _, mode := range []string{"warm", "cold"} {
			cfg := f.podConfig(fmt.Sprintf("start-%s-%d", mode, n))
			if mode == "cold" {
				cfg.Annotations = map[string]string{"io.veil.config.guest.memory_mib": mem}
			}
			f.shared.WaitPoolFull(b)
			start := time.Now()
			ctx, cancel := context.WithTimeout(f.ctx, 2*time.Minute)
			pod, err := f.cl.RunPod(ctx, cfg, harness.HandlerVeil)
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			f.startContainer(b, pod, cfg, shContainer("c", `while true; do sleep 1; done`))
			took := time.Since(start)
			if w, err := harness.IsWarm(f.stateDir, pod); err != nil || w != (mode == "warm") {
				b.Fatalf("%s pod started warm: %v (%v)", mode, w, err)
			}
			f.removePod(b, pod, harness.HandlerVeil)
			if mode == "warm" {
				warm = append(warm, took)
			} else {
				cold = append(cold, took)
			}
		}
	}
	slices.Sort(warm)
	slices.Sort(cold)
	mw, mc := warm[len(warm)/2], cold[len(cold)/2]
	b.ReportMetric(mw.Seconds(), "warm_pod_start_s")
	b.ReportMetric(mc.Seconds(), "cold_pod_start_s")
	b.ReportMetric(float64(mw)/float64(mc), "warm_over_cold")
	fmt.Printf("BenchmarkPodStartWarm: RunPodSandbox to container running, veil warm median %v of %v, cold median %v of %v: %.2f × cold (target ≤ 0.40)\n",
		mw, warm, mc, cold, float64(mw)/float64(mc))
}
