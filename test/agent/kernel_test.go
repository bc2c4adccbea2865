package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/sandbox"
	"github.com/veil-runtime/veil/test/harness"
)

// initramfsTimeout bounds agent/initramfs/build.sh.
const initramfsTimeout = 2 * time.Minute

// TestVeilKernel boots a sandbox on the kernel `make kernel` builds
// (everything built in, no modules) with an initramfs made for it, and runs
// containers in it through the agent API. `make guest` builds that kernel
// (it is the default guest kernel), so under VEIL_INTEGRATION=1 a missing
// one fails the test.
func TestVeilKernel(t *testing.T) {
	cfg := harness.SandboxConfig(t)
	useVeilKernel(t, cfg)
	rootfs := busyboxRootfs(t)

	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	s, err := sandbox.Start(ctx, "kernel-test", cfg, sandbox.Options{Hostname: "veil-test"})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = s.Stop(context.Background())
		}
	})

	h, err := s.Agent().Health(ctx, &api.HealthRequest{})
	if err != nil {
		t.Fatalf("Health: %v", err)
	}
	release := veilKernelRelease(t)
	if h.KernelRelease != release {
		t.Errorf("guest kernel %q, want %q (the veil kernel)", h.KernelRelease, release)
	}

	cases := []struct {
		name    string
		args    []string
		wantOut []string // substrings of stdout
	}{
		{name: "hello", args: []string{"/bin/sh", "-c", "echo hello"}, wantOut: []string{"hello\n"}},
		{name: "built-in file systems", args: []string{"/bin/cat", "/proc/filesystems"},
			wantOut: []string{"\toverlay\n", "\tvirtiofs\n", "\tcgroup2\n", "\ttmpfs\n", "\tdevpts\n", "\tmqueue\n"}},
		// As in a runc container: no tunnel devices (sit0) a driver adds
		// to every namespace (kernel-config/fragments/trim.config).
		{name: "a new network namespace holds only lo", args: []string{"/bin/sh", "-c", `echo "[$(ls /sys/class/net)]"`}, wantOut: []string{"[lo]\n"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, status := runContainer(t, s, fmt.Sprintf("k%d", i), rootfs, tc.args...)
			if status != 0 {
				t.Errorf("exit status %d, stdout %q", status, out)
			}
			for _, want := range tc.wantOut {
				if !strings.Contains(out, want) {
					t.Errorf("stdout %q lacks %q", out, want)
				}
			}
		})
	}

	pids := s.Pids()
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	stopped = true
	if err := s.Stop(sctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	assertNothingLeft(t, s.Dir(), pids)
}

// BenchmarkGuestKernels compares launch to agent ready (sandbox.Start plus
// one Health round trip) on the configured kernel and initramfs (Veil's by
// default; point VEIL_CONFIG at a config naming Debian's kernel from make
// setup, with an initramfs holding its modules, to compare the two) with
// the veil kernel and its own initramfs, one VM at a time, alternating.
// Run it on an otherwise idle host:
//
//	VEIL_INTEGRATION=1 go test -run '^$' -bench GuestKernels -benchtime 1x ./test/agent/
func BenchmarkGuestKernels(b *testing.B) {
	const samples = 5
	base := harness.SandboxConfig(b)
	veil := *base
	useVeilKernel(b, &veil)

	kernels := []struct {
		name string
		cfg  *config.Config
	}{{"configured", base}, {"veil", &veil}}
	times := make([][]time.Duration, len(kernels))
	for i := range samples {
		for k, kern := range kernels {
			times[k] = append(times[k], launchToReady(b, kern.cfg, fmt.Sprintf("kbench-%s-%d", kern.name, i)))
		}
	}
	for k, kern := range kernels {
		m := medianDuration(times[k])
		b.ReportMetric(m.Seconds(), kern.name+"_ready_s")
		b.Logf("%s kernel %s: launch to agent ready median %v of %v", kern.name, kern.cfg.Guest.Kernel, m, times[k])
	}
}

// launchToReady times sandbox.Start plus one Health, then stops the sandbox.
func launchToReady(b *testing.B, cfg *config.Config, id string) time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	start := time.Now()
	s, err := sandbox.Start(ctx, id, cfg, sandbox.Options{Hostname: id})
	if err != nil {
		b.Fatalf("sandbox start (kernel %s): %v", cfg.Guest.Kernel, err)
	}
	if _, err := s.Agent().Health(ctx, &api.HealthRequest{}); err != nil {
		_ = s.Stop(context.Background())
		b.Fatalf("Health (kernel %s): %v", cfg.Guest.Kernel, err)
	}
	d := time.Since(start)
	if err := s.Stop(ctx); err != nil {
		b.Fatalf("sandbox stop: %v", err)
	}
	return d
}

func medianDuration(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// veilKernelDir is where kernel-config/build-kernel.sh (make kernel) puts
// its kernel.
func veilKernelDir() string { return filepath.Join(harness.CacheDir(), "kernel-veil") }

func veilKernelRelease(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(veilKernelDir(), "release"))
	if err != nil {
		t.Fatalf("veil kernel release: %v (run make kernel)", err)
	}
	return strings.TrimSpace(string(b))
}

// useVeilKernel points cfg at the veil kernel and an initramfs built for it
// (no modules) under <output>/guest-veil. It fails when the kernel was not
// built: `make guest`, which integration tests need, builds it.
func useVeilKernel(t testing.TB, cfg *config.Config) {
	t.Helper()
	kdir := veilKernelDir()
	vmlinux := filepath.Join(kdir, "vmlinux")
	if _, err := os.Stat(vmlinux); errors.Is(err, os.ErrNotExist) {
		t.Fatalf("no veil kernel at %s: run make guest (it builds the kernel)", vmlinux)
	} else if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(harness.OutputDir(), "guest-veil")
	ctx, cancel := context.WithTimeout(context.Background(), initramfsTimeout)
	defer cancel()
	script := filepath.Join(harness.RepoRoot(), "agent", "initramfs", "build.sh")
	agentBin := filepath.Join(harness.OutputDir(), "bin", "veil-agent")
	if b, err := exec.CommandContext(ctx, "bash", script, agentBin, kdir, out).CombinedOutput(); err != nil {
		t.Fatalf("initramfs for the veil kernel: %s %s %s %s: %v\n%s", script, agentBin, kdir, out, err, b)
	}
	cfg.Guest.Kernel = vmlinux
	cfg.Guest.Initrd = filepath.Join(out, "initramfs.cpio")
}
