package cri

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/veil-runtime/veil/test/harness"
)

// TestDashboardPicture is not a test: with VEIL_DASHBOARD_OUT=<png> it
// runs a small node for 5 minutes (warm and cold pods, a CPU
// spinner, a chatty logger, execs, a pod replaced midway) under
// `veil monitor` and a real Prometheus (Debian's), then draws the Grafana
// dashboard's panels from Prometheus' data (docs/grafana/render.py) into
// that file: the picture in docs/metrics.md.
func TestDashboardPicture(t *testing.T) {
	out := os.Getenv("VEIL_DASHBOARD_OUT")
	if out == "" {
		t.Skip("draws docs/grafana's picture; set VEIL_DASHBOARD_OUT=<png> to run it")
	}
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus: %v (apt-get install prometheus)", err)
	}
	f := newFixture(t, WarmPool(1))
	ctx, cancel := context.WithTimeout(f.ctx, 20*time.Minute)
	defer cancel()
	m, err := harness.StartMonitor(ctx, f.shared.ConfigPath, filepath.Join(t.TempDir(), "monitor.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Stop(context.WithoutCancel(ctx)) }()

	// Prometheus scrapes the monitor every 5 s.
	dir := t.TempDir()
	target := strings.TrimSuffix(strings.TrimPrefix(m.URL, "http://"), "/metrics")
	cfg := fmt.Sprintf("global:\n  scrape_interval: 5s\n  scrape_timeout: 4s\nscrape_configs:\n  - job_name: veil\n    static_configs:\n      - targets: [%q]\n", target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	const promAddr = "127.0.0.1:19090"
	prom := exec.Command(promBin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+promAddr)
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	prom.Stdout, prom.Stderr = logf, logf
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = prom.Process.Kill(); _ = prom.Wait() }()
	for {
		if resp, err := http.Get("http://" + promAddr + "/-/ready"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-ctx.Done():
			t.Fatal("prometheus not ready")
		case <-time.After(200 * time.Millisecond):
		}
	}

	begin := time.Now()
	run := func(name, script string, cold bool) string {
		cfg := f.podConfig(name)
		if cold {
			cfg.Annotations = map[string]string{"io.veil.config.guest.memory_mib": strconv.Itoa(int(f.shared.Config.Guest.MemoryMiB) + 4)}
		}
		var id string
		if cold {
			// runPod checks that a pod started warm while the pool is on.
			rctx, rcancel := context.WithTimeout(ctx, 2*time.Minute)
			var err error
			id, err = f.cl.RunPod(rctx, cfg, harness.HandlerVeil)
			rcancel()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.removePod(t, id, harness.HandlerVeil) })
		} else {
			id = f.runPod(t, harness.HandlerVeil, cfg)
		}
		f.startContainer(t, id, cfg, shContainer("app", script))
		return id
	}
	pass := func(until time.Duration) {
		// Time passes for the picture; nothing waits on it.
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(time.Until(begin.Add(until))):
		}
	}
	web := run("web-0", `while :; do echo "GET / 200 $(date +%s)"; sleep 0.1; done`, false)
	pass(20 * time.Second)
	batch := run("batch-0", `while :; do :; done`, false)
	pass(40 * time.Second)
	run("api-0", `sleep 100000`, true)
	for i := range 6 {
		pass(time.Duration(60+15*i) * time.Second)
		ectx, ecancel := context.WithTimeout(ctx, time.Minute)
		_, err := f.cl.Runtime.ExecSync(ectx, &runtimeapi.ExecSyncRequest{ContainerId: f.containerOf(t, web), Cmd: []string{"sh", "-c", "head -c 200000 /dev/urandom | md5sum"}, Timeout: 30})
		ecancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	pass(2*time.Minute + 30*time.Second)
	f.removePod(t, batch, harness.HandlerVeil)
	run("batch-1", `while :; do :; done`, false)
	pass(5 * time.Minute)

	render := exec.CommandContext(ctx, "/usr/bin/python3", filepath.Join("..", "..", "docs", "grafana", "render.py"),
		"--prometheus", "http://"+promAddr, "--dashboard", filepath.Join("..", "..", "docs", "grafana", "veil-dashboard.json"),
		"--out", out, "--range", "300")
	if b, err := render.CombinedOutput(); err != nil {
		t.Fatalf("render: %v\n%s", err, b)
	}
	t.Logf("wrote %s", out)
}

// containerOf is the first app container of pod.
func (f *fixture) containerOf(t *testing.T, pod string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
	defer cancel()
	resp, err := f.cl.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: pod}})
	if err != nil || len(resp.Containers) == 0 {
		t.Fatalf("containers of %s: %v (%d)", pod, err, len(resp.GetContainers()))
	}
	return resp.Containers[0].Id
}
