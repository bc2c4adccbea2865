package bench

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/pool"
	"github.com/veil-runtime/veil/runtime/sandbox"
	"github.com/veil-runtime/veil/test/harness"
	"github.com/veil-runtime/veil/test/integration"
)

// warmSamples is how many starts each side gets, alternating warm and
// cold (the pool is full before each warm one, and idle: nothing boots
// while a start is timed).
const warmSamples = 5

// warmConfig writes the bench config with the warm pool on (size VMs of
// nics NICs, a private socket) and returns it and its path.
func warmConfig(b *testing.B, size, nics int) (*config.Config, string) {
	b.Helper()
	cfg, _ := veilConfig(b)
	cfg.Pool.Size, cfg.Pool.NICs = size, nics
	cfg.Pool.Socket = filepath.Join(b.TempDir(), "pool.sock")
	path, err := harness.WriteConfig(cfg, b.TempDir(), "veil-warm.toml")
	if err != nil {
		b.Fatal(err)
	}
	return cfg, path
}

// startPool runs the pool daemon for the bench and waits until it is full.
func startPool(b *testing.B, cfg *config.Config, cfgPath string) *harness.Pool {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := harness.StartPool(ctx, cfgPath, filepath.Join(b.TempDir(), "pool.log"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := p.Stop(sctx); err != nil {
			b.Errorf("stop the pool: %v", err)
		}
	})
	waitFull(b, p, cfg.Pool.Size)
	return p
}

func waitFull(b *testing.B, p *harness.Pool, n int) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := p.Wait(ctx, n); err != nil {
		b.Fatal(err)
	}
	// Let the last boot's tail (the refill's helpers settling) pass.
	time.Sleep(time.Second)
}

// BenchmarkWarmStart compares a sandbox's start from the warm pool
// (claim, adopt, CreateSandbox, one Health: what the shim does before the
// first container) with a cold sandbox.Start in the same run, and breaks
// the warm start down by stage. Target: ready from warm ≤ 0.15 s.
func BenchmarkWarmStart(b *testing.B) {
	integration.Require(b, integration.Root, integration.VM)
	cfg, cfgPath := warmConfig(b, 1, 0)
	p := startPool(b, cfg, cfgPath)
	var warm, cold, claims []time.Duration
	stages := map[string][]time.Duration{}
	for i := range warmSamples {
		waitFull(b, p, 1)
		w, claim, st := warmStart(b, cfg, fmt.Sprintf("bench-warm-%d", i))
		warm, claims = append(warm, w), append(claims, claim)
		for _, s := range st {
			stages[s.Name] = append(stages[s.Name], s.Took)
		}
		waitFull(b, p, 1)
		cold = append(cold, sandboxStart(b, cfg, fmt.Sprintf("bench-cold-%d", i)))
	}
	mw, mc := median(warm), median(cold)
	b.ReportMetric(mw.Seconds(), "warm_ready_s")
	b.ReportMetric(mc.Seconds(), "cold_ready_s")
	b.ReportMetric(median(claims).Seconds(), "claim_s")
	var lines []string
	lines = append(lines, fmt.Sprintf("  %-28s %7.1f ms", "claim (pool socket)", ms(median(claims))))
	for _, name := range stageOrder(stages) {
		lines = append(lines, fmt.Sprintf("  %-28s %7.1f ms", name, ms(median(stages[name]))))
	}
	fmt.Printf("BenchmarkWarmStart: sandbox ready, warm median %v of %v, cold median %v of %v (warm/cold %.2f; target warm ≤ 0.15 s)\nwarm start by stage (medians):\n%s\n",
		mw, warm, mc, cold, float64(mw)/float64(mc), strings.Join(lines, "\n"))
}

// stageOrder is the adopt steps in the order they ran.
func stageOrder(stages map[string][]time.Duration) []string {
	names := slices.Collect(maps.Keys(stages))
	order := map[string]int{}
	for i, n := range []string{"take the pool directory", "take the keeper", "sandbox cgroup", "open the share", "adopt virtiofsd", "hypervisor", "adopt VM", "attach network", "oom_score_adj", "connect to agent", "CreateSandbox", "SetupNetwork", "watch virtiofsd"} {
		order[n] = i
	}
	slices.SortFunc(names, func(a, b string) int { return order[a] - order[b] })
	return names
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// warmStart claims and adopts a VM as the shim does, asks Health once,
// and stops it; it returns the time to ready, the claim's share and the
// adopt's stages.
func warmStart(b *testing.B, cfg *config.Config, id string) (time.Duration, time.Duration, []sandbox.Stage) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	c, err := pool.Claim(ctx, cfg, id, 0)
	if err != nil {
		b.Fatalf("claim: %v", err)
	}
	claim := time.Since(start)
	s, err := sandbox.Adopt(ctx, c.Dir, cfg, sandbox.Options{Hostname: id}, c.Keeper)
	if err != nil {
		b.Fatalf("adopt: %v", err)
	}
	if _, err := s.Agent().Health(ctx, &api.HealthRequest{}); err != nil {
		b.Fatalf("health: %v", err)
	}
	d := time.Since(start)
	if err := s.Stop(ctx); err != nil {
		b.Fatalf("sandbox stop: %v", err)
	}
	return d, claim, s.StartStages()
}

// BenchmarkCtrRunWarm: `ctr run --rm ... echo` to the first output, from
// the warm pool and cold (the same config with the pool off, given as the
// runtime's ConfigPath), alternating, through one containerd. Target:
// warm ≤ 0.4 × cold.
func BenchmarkCtrRunWarm(b *testing.B) {
	c, _ := startContainerd(b)
	cfg, cfgPath := warmConfig(b, 1, 0)
	p := startPool(b, cfg, cfgPath)
	coldCfg := *cfg
	coldCfg.Pool.Size = 0
	coldPath, err := harness.WriteConfig(&coldCfg, b.TempDir(), "veil-cold.toml")
	if err != nil {
		b.Fatal(err)
	}
	var warm, cold []time.Duration
	for i := range warmSamples {
		waitFull(b, p, 1)
		w := runTimedConfig(b, c, cfgPath, fmt.Sprintf("bench-ctr-warm-%d", i))
		if got, err := os.ReadFile(p.LogPath); err != nil || strings.Count(string(got), `msg="pool VM claimed"`) != i+1 {
			b.Fatalf("run %d did not start warm (%v)", i, err)
		}
		warm = append(warm, w)
		waitFull(b, p, 1)
		cold = append(cold, runTimedConfig(b, c, coldPath, fmt.Sprintf("bench-ctr-cold-%d", i)))
	}
	mw, mc := median(warm), median(cold)
	b.ReportMetric(mw.Seconds(), "warm_first_output_s")
	b.ReportMetric(mc.Seconds(), "cold_first_output_s")
	b.ReportMetric(float64(mw)/float64(mc), "warm_over_cold")
	fmt.Printf("BenchmarkCtrRunWarm: ctr run --rm to first output, warm median %v of %v, cold median %v of %v: %.2f × cold (target ≤ 0.40)\n",
		mw, warm, mc, cold, float64(mw)/float64(mc))
}

// runTimedConfig is runTimed with the runtime's ConfigPath option.
func runTimedConfig(b *testing.B, c *harness.Containerd, cfgPath, id string) time.Duration {
	b.Helper()
	r := runTimedFlags(b, c, []string{"--runtime-config-path", cfgPath}, veilRuntime, id, "echo", "ready")
	return r.firstOutput
}

// BenchmarkWarmIdle: what a warm VM costs while it waits: each process's
// memory (RSS, PSS, USS) and CPU over idleWindow, for a pool of 2.
func BenchmarkWarmIdle(b *testing.B) {
	integration.Require(b, integration.Root, integration.VM)
	cfg, cfgPath := warmConfig(b, 2, 1)
	p := startPool(b, cfg, cfgPath)
	st, err := p.Status(context.Background())
	if err != nil || len(st.VMs) != 2 {
		b.Fatalf("pool status %+v, %v", st, err)
	}
	pids := map[string]int{}
	for _, f := range mustGlob(b, filepath.Join(st.VMs[0].Dir, "*.pid")) {
		bs, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(bs))); err == nil {
			pids[strings.TrimSuffix(filepath.Base(f), ".pid")] = pid
		}
	}
	mem := settledMemory(b, pids)
	const idleWindow = 20 * time.Second
	before := map[string]float64{}
	for n, pid := range pids {
		before[n] = cpuSeconds(b, pid)
	}
	time.Sleep(idleWindow)
	var lines []string
	var cpuTotal float64
	for _, n := range slices.Sorted(maps.Keys(pids)) {
		m := mem[n]
		cpu := (cpuSeconds(b, pids[n]) - before[n]) / idleWindow.Seconds() * 100
		cpuTotal += cpu
		b.ReportMetric(m.rss(), n+"_MiB")
		b.ReportMetric(m.pss, n+"_pss_MiB")
		b.ReportMetric(cpu, n+"_cpu_pct")
		lines = append(lines, fmt.Sprintf("  %-20s %6.1f  %6.1f  %6.1f  %5.1f %%", n, m.rss(), m.pss, m.uss, cpu))
	}
	rss := sum(mem, memory.rss)
	pss := sum(mem, func(m memory) float64 { return m.pss })
	uss := sum(mem, func(m memory) float64 { return m.uss })
	b.ReportMetric(rss, "total_MiB")
	b.ReportMetric(pss, "total_pss_MiB")
	b.ReportMetric(cpuTotal, "total_cpu_pct")
	fmt.Printf("BenchmarkWarmIdle: one idle warm VM of a pool of 2 (1 NIC): MiB RSS, PSS, USS, and CPU %% of one core over %v\n%s\n  %-20s %6.1f  %6.1f  %6.1f  %5.1f %%\n",
		idleWindow, strings.Join(lines, "\n"), "total", rss, pss, uss, cpuTotal)
}

func mustGlob(b *testing.B, pattern string) []string {
	b.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil || len(m) == 0 {
		b.Fatalf("glob %s: %v %v", pattern, m, err)
	}
	return m
}

// cpuSeconds is a process's user+system CPU time (/proc/<pid>/stat).
func cpuSeconds(b *testing.B, pid int) float64 {
	b.Helper()
	bs, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	s := string(bs)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}
