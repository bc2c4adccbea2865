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
	"github.com/veil-runtime/veil/test/harness"
)

// launchSamples is how many boots each side gets (one VM at a time).
const launchSamples = 3

// BenchmarkSandboxLaunch compares a full sandbox start (virtiofsd,
// vhost-device-vsock, QEMU, the agent answering Health, CreateSandbox)
// with a bare QEMU boot of the same kernel, initramfs, command line and
// machine without any device, timed to the agent's first console line
// ("pid 1 started", logged as the first thing PID 1 does).
// Target: sandbox / bare ≤ 1.10.
func BenchmarkSandboxLaunch(b *testing.B) {
	harness.Skip(b)
	cfg, _ := veilConfig(b)
	var sb, bare []time.Duration
	var marker string
	for i := range launchSamples {
		sb = append(sb, sandboxStart(b, cfg, fmt.Sprintf("bench-launch-%d", i)))
		d, line := bareBoot(b, cfg)
		bare = append(bare, d)
		marker = line
	}
	ms, mb := median(sb), median(bare)
	ratio := float64(ms) / float64(mb)
	b.ReportMetric(ms.Seconds(), "sandbox_ready_s")
	b.ReportMetric(mb.Seconds(), "bare_boot_s")
	b.ReportMetric(ratio, "ratio")
	b.Logf("sandbox start to agent ready: median %v of %v; bare QEMU boot to first console line (%q): median %v of %v; ratio %.2f (target ≤ 1.10)",
		ms, sb, marker, mb, bare, ratio)
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

// pid1Marker is what the agent logs first as PID 1.
const pid1Marker = "pid 1 started"

// bareBoot boots the guest with QEMU alone and returns the time from
// launch to the agent's first console line, and that line.
func bareBoot(b *testing.B, cfg *config.Config) (time.Duration, string) {
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
		if line := sc.Text(); strings.Contains(line, pid1Marker) {
			return time.Since(start), strings.TrimSpace(line)
		}
	}
	b.Fatalf("bare boot: no %q on the console (timed out: %v)", pid1Marker, ctx.Err() != nil)
	return 0, ""
}
