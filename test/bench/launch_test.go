package bench

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/hypervisor"
	"github.com/veil-runtime/veil/runtime/hypervisor/qemu"
	"github.com/veil-runtime/veil/runtime/sandbox"
	"github.com/veil-runtime/veil/test/integration"
)

// launchSamples is how many boots each side gets (one VM at a time).
const launchSamples = 3

// BenchmarkSandboxLaunch compares a full sandbox start (virtiofsd,
// vhost-device-vsock, QEMU, the agent answering Health, CreateSandbox)
// with a bare QEMU boot of the same kernel, initramfs, command line and
// machine without any device, timed to the first console line the agent
// logs as PID 1 (tagged agent=pid1); the time to its "agent serving" line
// is reported too.
// Target: sandbox / bare ≤ 1.10.
func BenchmarkSandboxLaunch(b *testing.B) {
	integration.Require(b, integration.Root, integration.VM)
	cfg, _ := veilConfig(b)
	var sb, bare, serving []time.Duration
	var marker string
	for i := range launchSamples {
		sb = append(sb, sandboxStart(b, cfg, fmt.Sprintf("bench-launch-%d", i)))
		pid1, srv, line := bareBoot(b, cfg)
		bare = append(bare, pid1)
		serving = append(serving, srv)
		marker = line
	}
	ms, mb, mserv := median(sb), median(bare), median(serving)
	ratio := float64(ms) / float64(mb)
	b.ReportMetric(ms.Seconds(), "sandbox_ready_s")
	b.ReportMetric(mb.Seconds(), "bare_pid1_s")
	b.ReportMetric(mserv.Seconds(), "bare_serving_s")
	b.ReportMetric(ratio, "ratio")
	b.Logf("sandbox start to agent ready: median %v of %v; bare QEMU boot to PID 1's first line (%q): median %v of %v, to \"agent serving\": median %v; ratio %.2f (target ≤ 1.10)",
		ms, sb, marker, mb, bare, mserv, ratio)
}

// sandboxStart times sandbox.Start (which returns once Health answered and
// CreateSandbox succeeded) plus one more Health round trip, then stops it.
func sandboxStart(b *testing.B, cfg *config.Config, id string) time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_ = sandbox.Cleanup(ctx, cfg, id)
	start := time.Now()
	s, err := sandbox.Start(ctx, id, cfg, sandbox.Options{Hostname: id})
	if err != nil {
		b.Fatalf("sandbox start: %v", err)
	}
	if _, err := s.Agent().Health(ctx, &api.HealthRequest{}); err != nil {
		b.Fatalf("health: %v", err)
	}
	d := time.Since(start)
	if err := s.Stop(ctx); err != nil {
		b.Fatalf("sandbox stop: %v", err)
	}
	return d
}

const (
	// pid1Marker tags every line the agent logs as PID 1.
	pid1Marker = "agent=pid1"
	// servingMarker is the agent's line once its server listens.
	servingMarker = "agent serving"
)

// bareBoot boots the guest with QEMU alone and returns the times from
// launch to the agent's first line as PID 1 and to its "agent serving"
// line, and the first line.
func bareBoot(b *testing.B, cfg *config.Config) (pid1, serving time.Duration, first string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tsc, err := hypervisor.HostTSCKHz()
	if err != nil {
		b.Logf("host TSC rate unknown: %v", err)
	}
	qemuPath := cfg.Hypervisor.QEMUPath
	if qemuPath == "" {
		qemuPath = "qemu-system-x86_64"
	}
	accel := qemu.DetectAccel()
	args := []string{"-name", "veil-bench-bare", "-M", "microvm,x-option-roms=off", "-accel", string(accel)}
	if accel == qemu.AccelKVM {
		args = append(args, "-cpu", "host")
	}
	args = append(args,
		"-smp", fmt.Sprint(cfg.Guest.VCPUs),
		"-m", fmt.Sprintf("%dM", cfg.Guest.MemoryMiB),
		"-object", fmt.Sprintf("memory-backend-memfd,id=mem,size=%dM,share=on", cfg.Guest.MemoryMiB),
		"-numa", "node,memdev=mem",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-serial", "stdio",
		"-kernel", cfg.Guest.Kernel, "-initrd", cfg.Guest.Initrd,
		"-append", hypervisor.Cmdline(tsc, cfg.Guest.KernelParams),
	)
	cmd := exec.CommandContext(ctx, qemuPath, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatalf("start qemu: %v", err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if pid1 == 0 && strings.Contains(line, pid1Marker) {
			pid1, first = time.Since(start), strings.TrimSpace(line)
		}
		if strings.Contains(line, servingMarker) {
			return pid1, time.Since(start), first
		}
	}
	b.Fatalf("bare boot: no %q line on the console (timed out: %v)", servingMarker, ctx.Err() != nil)
	return 0, 0, ""
}
