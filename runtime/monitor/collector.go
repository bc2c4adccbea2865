package monitor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/containerd/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/inspect"
	shimapi "github.com/veil-runtime/veil/shim/api"
)

// Options bound the collector's work per scrape.
type Options struct {
	// SandboxTimeout bounds the gathering of one sandbox.
	SandboxTimeout time.Duration
	// Concurrency bounds the sandboxes gathered at once.
	Concurrency int
}

// Collector gathers every sandbox's figures at each scrape
// (prometheus.Collector).
type Collector struct {
	ctx  context.Context
	src  Source
	opts Options

	failures *prometheus.CounterVec
	duration prometheus.Histogram
	// starts, stages and startFailures follow state_dir's start
	// journal; journalMu serialises its reading.
	starts        *prometheus.HistogramVec
	stages        *prometheus.HistogramVec
	startFailures *prometheus.CounterVec
	journalMu     sync.Mutex
}

// startBuckets are the bounds, in seconds, of the start histograms: a
// warm start's stages take milliseconds, a cold boot under TCG seconds.
var startBuckets = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2, 4, 8, 16}

// NewCollector returns a collector over src; ctx is the monitor's (its
// logger, and its end stops the guest requests in flight).
func NewCollector(ctx context.Context, src Source, opts Options) *Collector {
	if opts.Concurrency < 1 {
		opts.Concurrency = 1
	}
	return &Collector{
		ctx:  ctx,
		src:  src,
		opts: opts,
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veil_monitor_sandbox_scrape_failures_total",
			Help: "Parts of sandboxes (source: host, cgroup, guest, containers, shim) and of the node (journal: the start journal) the monitor failed to read, since it started.",
		}, []string{"source"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "veil_monitor_scrape_duration_seconds",
			Help:    "How long the monitor took to gather every sandbox for a scrape (observed at the end of each scrape).",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		starts: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "veil_sandbox_start_duration_seconds",
			Help:    "Sandbox starts that worked since the monitor started, as their shims timed them, by start_mode (warm: from the pool, cold: booted for the pod).",
			Buckets: startBuckets,
		}, []string{"start_mode"}),
		stages: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "veil_sandbox_start_stage_duration_seconds",
			Help:    "Stages of the sandbox starts that worked since the monitor started (the start steps, the wait for the agent split into boot and handshake), by start_mode and stage.",
			Buckets: startBuckets,
		}, []string{"start_mode", "stage"}),
		startFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veil_sandbox_start_failures_total",
			Help: "Sandbox starts that failed since the monitor started, by start_mode and the step that failed (a failed warm start is followed by a cold one).",
		}, []string{"start_mode", "step"}),
	}
}

// Describe sends every description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
	c.failures.Describe(ch)
	c.duration.Describe(ch)
	c.starts.Describe(ch)
	c.stages.Describe(ch)
	c.startFailures.Describe(ch)
}

// Collect gathers every sandbox, at most opts.Concurrency at once, each
// within opts.SandboxTimeout.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	began := time.Now()
	defer func() {
		c.duration.Observe(time.Since(began).Seconds())
		c.failures.Collect(ch)
		c.duration.Collect(ch)
		c.starts.Collect(ch)
		c.stages.Collect(ch)
		c.startFailures.Collect(ch)
	}()
	c.followStarts()
	sbs, err := c.src.List()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descSandboxes, fmt.Errorf("list sandboxes: %w", err))
		return
	}
	ch <- prometheus.MustNewConstMetric(descSandboxes, prometheus.GaugeValue, float64(len(sbs)))
	results := make([][]prometheus.Metric, len(sbs))
	sem := make(chan struct{}, c.opts.Concurrency)
	var wg sync.WaitGroup
	for i, sb := range sbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = c.gather(sb)
		}()
	}
	wg.Wait()
	for _, ms := range results {
		for _, m := range ms {
			ch <- m
		}
	}
}

// sandboxMetrics builds one sandbox's series.
type sandboxMetrics struct {
	labels []string
	out    []prometheus.Metric
}

func (s *sandboxMetrics) add(d *prometheus.Desc, t prometheus.ValueType, v float64, extra ...string) {
	m, err := prometheus.NewConstMetric(d, t, v, append(append([]string{}, s.labels...), extra...)...)
	if err != nil {
		// A label value that cannot be (not UTF-8): the scrape reports
		// it instead of the process panicking.
		m = prometheus.NewInvalidMetric(d, err)
	}
	s.out = append(s.out, m)
}

func (s *sandboxMetrics) ok(source string, ok bool) {
	v := 0.0
	if ok {
		v = 1
	}
	s.add(descScrapeOK, prometheus.GaugeValue, v, source)
}

// gather reads one sandbox: the host side from /proc and cgroupfs, then
// the guest, which alone can hang (a frozen or hostile guest) and so is
// cut off at the sandbox's deadline.
func (c *Collector) gather(sb inspect.SandboxInfo) []prometheus.Metric {
	began := time.Now()
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.SandboxTimeout)
	defer cancel()
	s := &sandboxMetrics{labels: []string{sb.ID, sb.Pod.Name, sb.Pod.Namespace, sb.Pod.UID}}
	mode := sandboxStartCold
	if sb.PoolVM != "" {
		mode = sandboxStartWarm
	}
	s.add(descInfo, prometheus.GaugeValue, 1, sb.Hypervisor, mode)
	if !sb.Created.IsZero() {
		s.add(descStartTime, prometheus.GaugeValue, float64(sb.Created.UnixNano())/1e9)
	}
	s.ok(sourceHost, c.host(ctx, s, sb))
	if sb.Cgroup != "" {
		s.ok(sourceCgroup, c.cgroup(ctx, s, sb))
	}
	s.ok(sourceShim, c.shim(ctx, s, sb))
	guestOK, containersOK := c.guest(ctx, s, sb)
	s.ok(sourceGuest, guestOK)
	if guestOK {
		s.ok(sourceContainers, containersOK)
	}
	s.add(descScrapeDuration, prometheus.GaugeValue, time.Since(began).Seconds())
	return s.out
}

func (c *Collector) fail(ctx context.Context, sb inspect.SandboxInfo, source string, err error) {
	c.failures.WithLabelValues(source).Inc()
	log.G(ctx).WithError(err).WithFields(log.Fields{"sandbox": sb.ID, "source": source}).Debug("monitor: scrape failed")
}

// host adds every live helper's use; it fails if any helper's use
// cannot be read.
func (c *Collector) host(ctx context.Context, s *sandboxMetrics, sb inspect.SandboxInfo) bool {
	ok := true
	for _, h := range sb.Helpers {
		if !h.Alive {
			continue
		}
		u, err := c.src.Usage(h.Pid)
		if err != nil {
			c.fail(ctx, sb, sourceHost, fmt.Errorf("helper %s: %w", h.Name, err))
			ok = false
			continue
		}
		addHelper(s, helperName(sb, h.Name), u)
	}
	return ok
}

func addHelper(s *sandboxMetrics, name string, u inspect.ProcUsage) {
	s.add(descHelperRSS, prometheus.GaugeValue, float64(u.RSSBytes), name)
	s.add(descHelperCPU, prometheus.CounterValue, u.UserTime.Seconds(), name, "user")
	s.add(descHelperCPU, prometheus.CounterValue, u.SystemTime.Seconds(), name, "system")
	s.add(descHelperThreads, prometheus.GaugeValue, float64(u.Threads), name)
	s.add(descHelperFDs, prometheus.GaugeValue, float64(u.OpenFDs), name)
}

// helperName maps a helper's pid file name onto the helper label.
func helperName(sb inspect.SandboxInfo, name string) string {
	switch name {
	case sb.Hypervisor:
		return helperVMM
	case "vhost-vsock":
		return helperVsock
	case "virtiofsd":
		return helperVirtiofsd
	case "keeper":
		return helperKeeper
	}
	return name
}

func (c *Collector) cgroup(ctx context.Context, s *sandboxMetrics, sb inspect.SandboxInfo) bool {
	st, err := c.src.CgroupStats(sb)
	if err != nil {
		c.fail(ctx, sb, sourceCgroup, err)
		return false
	}
	s.add(descCgroupMemory, prometheus.GaugeValue, float64(st.MemoryBytes))
	s.add(descCgroupCPU, prometheus.CounterValue, float64(st.CPUNanos)/1e9)
	s.add(descCgroupThrottled, prometheus.CounterValue, float64(st.NrThrottled))
	s.add(descCgroupPids, prometheus.GaugeValue, float64(st.Pids))
	return true
}

// errNotRunning is a guest whose VMM is not running: nothing to ask.
var errNotRunning = errors.New("VMM not running")

// guest asks the agent for the guest's figures, giving up at ctx's
// deadline even if the request does not; it reports whether the guest
// and every container could be read.
func (c *Collector) guest(ctx context.Context, s *sandboxMetrics, sb inspect.SandboxInfo) (guestOK, containersOK bool) {
	if sb.State != inspect.StateRunning {
		c.fail(ctx, sb, sourceGuest, fmt.Errorf("%w (%s)", errNotRunning, sb.State))
		return false, false
	}
	type answer struct {
		st  *api.StatsResponse
		err error
	}
	done := make(chan answer, 1)
	go func() {
		st, err := c.src.GuestStats(ctx, sb)
		done <- answer{st, err}
	}()
	var a answer
	select {
	case a = <-done:
	case <-ctx.Done():
		a.err = fmt.Errorf("guest stats: %w", ctx.Err())
	}
	if a.err == nil && a.st == nil {
		a.err = errors.New("guest stats: empty answer")
	}
	if a.err != nil {
		c.fail(ctx, sb, sourceGuest, a.err)
		return false, false
	}
	// The guest names its containers; only those the host put in the
	// share are reported, so that a hostile guest cannot add series.
	known := make(map[string]bool, len(sb.Containers))
	for _, id := range sb.Containers {
		known[id] = true
	}
	var containers []*api.ContainerStats
	for _, cs := range a.st.Containers {
		if known[cs.ContainerId] {
			containers = append(containers, cs)
			delete(known, cs.ContainerId) // once: a repeated id is the guest's
		}
	}
	addGuest(s, a.st, containers)
	containersOK = true
	for _, cs := range containers {
		if cs.Error != "" {
			c.fail(ctx, sb, sourceContainers, fmt.Errorf("container %s: %s", cs.ContainerId, cs.Error))
			containersOK = false
			continue
		}
		addContainer(s, cs)
	}
	return true, containersOK
}

func addGuest(s *sandboxMetrics, st *api.StatsResponse, containers []*api.ContainerStats) {
	s.add(descGuestMemTotal, prometheus.GaugeValue, float64(st.MemoryTotalBytes))
	s.add(descGuestMemAvailable, prometheus.GaugeValue, float64(st.MemoryAvailableBytes))
	var inContainers uint64
	for _, cs := range containers {
		inContainers += cs.MemoryCurrentBytes
	}
	s.add(descGuestMemContainers, prometheus.GaugeValue, float64(inContainers))
	if cpu := st.Cpu; cpu != nil {
		for _, m := range []struct {
			mode string
			usec uint64
		}{
			{"user", cpu.UserUsec}, {"nice", cpu.NiceUsec}, {"system", cpu.SystemUsec}, {"idle", cpu.IdleUsec},
			{"iowait", cpu.IowaitUsec}, {"irq", cpu.IrqUsec}, {"softirq", cpu.SoftirqUsec}, {"steal", cpu.StealUsec},
		} {
			s.add(descGuestCPU, prometheus.CounterValue, float64(m.usec)/1e6, m.mode)
		}
		s.add(descGuestCPUs, prometheus.GaugeValue, float64(cpu.Online))
	}
	s.add(descGuestLoad1, prometheus.GaugeValue, st.Load1)
	s.add(descGuestLoad5, prometheus.GaugeValue, st.Load5)
	s.add(descGuestLoad15, prometheus.GaugeValue, st.Load15)
	s.add(descGuestProcesses, prometheus.GaugeValue, float64(st.Processes))
	s.add(descGuestTasks, prometheus.GaugeValue, float64(st.TasksRunning), "running")
	s.add(descGuestTasks, prometheus.GaugeValue, float64(st.Tasks), "all")
	s.add(descGuestUptime, prometheus.GaugeValue, st.UptimeSeconds)
}

func addContainer(s *sandboxMetrics, cs *api.ContainerStats) {
	id := cs.ContainerId
	s.add(descContainerCPU, prometheus.CounterValue, float64(cs.CpuUserUsec)/1e6, id, "user")
	s.add(descContainerCPU, prometheus.CounterValue, float64(cs.CpuSystemUsec)/1e6, id, "system")
	s.add(descContainerMemory, prometheus.GaugeValue, float64(cs.MemoryCurrentBytes), id)
	if cs.MemoryLimitBytes > 0 {
		s.add(descContainerMemoryLimit, prometheus.GaugeValue, float64(cs.MemoryLimitBytes), id)
	}
	var oom, kills uint64
	if e := cs.MemoryEvents; e != nil {
		oom, kills = e.Oom, e.OomKill
	}
	s.add(descContainerOOM, prometheus.CounterValue, float64(oom), id)
	s.add(descContainerOOMKills, prometheus.CounterValue, float64(kills), id)
	s.add(descContainerPids, prometheus.GaugeValue, float64(cs.PidsCurrent), id)
}

// shim asks the sandbox's shim for its telemetry, giving up at ctx's
// deadline: the shim's own process (as the socket's peer), its agent
// requests and stdio bytes, and the start, observed once per sandbox.
func (c *Collector) shim(ctx context.Context, s *sandboxMetrics, sb inspect.SandboxInfo) bool {
	type answer struct {
		pid int
		t   *shimapi.GetResponse
		err error
	}
	done := make(chan answer, 1)
	go func() {
		pid, t, err := c.src.ShimTelemetry(ctx, sb)
		done <- answer{pid, t, err}
	}()
	var a answer
	select {
	case a = <-done:
	case <-ctx.Done():
		a.err = fmt.Errorf("shim telemetry: %w", ctx.Err())
	}
	if a.err == nil && a.t == nil {
		a.err = errors.New("shim telemetry: empty answer")
	}
	if a.err != nil {
		c.fail(ctx, sb, sourceShim, a.err)
		return false
	}
	ok := true
	if u, err := c.src.Usage(a.pid); err != nil {
		c.fail(ctx, sb, sourceShim, fmt.Errorf("shim pid %d: %w", a.pid, err))
		ok = false
	} else {
		addHelper(s, helperShim, u)
	}
	t := a.t
	for _, r := range t.AgentRpcs {
		if len(r.Buckets) != len(t.RpcBucketBounds) {
			continue
		}
		buckets := make(map[float64]uint64, len(r.Buckets))
		for i, b := range t.RpcBucketBounds {
			buckets[b] = r.Buckets[i]
		}
		h, err := prometheus.NewConstHistogram(descAgentRPC, r.Count, r.SumSeconds, buckets, append(append([]string{}, s.labels...), r.Method)...)
		if err != nil {
			h = prometheus.NewInvalidMetric(descAgentRPC, err)
		}
		s.out = append(s.out, h)
		s.add(descAgentRPCErrors, prometheus.CounterValue, float64(r.Errors), r.Method)
	}
	for _, st := range t.Stdio {
		s.add(descStdio, prometheus.CounterValue, float64(st.Bytes), st.Stream)
	}
	return ok
}

// followStarts adds the start journal's new records to the start
// histograms and failure counters.
func (c *Collector) followStarts() {
	c.journalMu.Lock()
	defer c.journalMu.Unlock()
	recs, err := c.src.Starts()
	if err != nil {
		c.failures.WithLabelValues(sourceJournal).Inc()
		log.G(c.ctx).WithError(err).Debug("monitor: start journal")
	}
	for _, r := range recs {
		if r.Mode != sandboxStartCold && r.Mode != sandboxStartWarm {
			continue
		}
		if !r.OK {
			c.startFailures.WithLabelValues(r.Mode, r.Step).Inc()
			continue
		}
		c.starts.WithLabelValues(r.Mode).Observe(r.Seconds)
		for _, st := range r.Stages {
			c.stages.WithLabelValues(r.Mode, st.Name).Observe(st.Seconds)
		}
	}
}
