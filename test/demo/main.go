// Command demo shows Veil end to end (make demo): it starts a private
// containerd, imports an offline busybox image and runs one container in
// a Veil micro-VM with `ctr run --runtime io.containerd.veil.v2`, printing
// the host kernel, the container's output (the guest kernel's release) and
// the wall time from ctr's start to its exit. It needs root and what
// `make setup build guest` produce; it removes everything it created.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/test/harness"
	"github.com/veil-runtime/veil/test/image"
)

const (
	imageRef    = "docker.io/veil/busybox:demo"
	veilRuntime = "io.containerd.veil.v2"
	script      = `echo "guest kernel: $(uname -r)"; echo hello from a Veil micro-VM`
	// runTimeout bounds the whole ctr run: VM boot under TCG is ~2 s.
	runTimeout = 2 * time.Minute
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, w io.Writer) (retErr error) {
	if os.Geteuid() != 0 {
		return errors.New("needs root (it runs containerd and VMs): sudo make demo")
	}
	cfg := os.Getenv("VEIL_CONFIG")
	if cfg == "" {
		cfg = harness.ConfigPath()
	}
	if err := prerequisites(cfg); err != nil {
		return err
	}

	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return fmt.Errorf("uname: %w", err)
	}
	_, _ = fmt.Fprintf(w, "host kernel:  %s\n", unix.ByteSliceToString(uts.Release[:]))

	c, err := harness.Start(ctx, harness.Options{Env: []string{"VEIL_CONFIG=" + cfg}})
	if err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	defer func() {
		if err := c.Stop(context.WithoutCancel(ctx)); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("cleanup: %w", err))
		}
	}()

	tarPath, err := image.BuildBusybox(c.Dir, imageRef)
	if err != nil {
		return err
	}
	if err := c.Import(ctx, tarPath); err != nil {
		return fmt.Errorf("import %s: %w", imageRef, err)
	}

	args := []string{"run", "--rm", "--runtime", veilRuntime, imageRef, "demo", "sh", "-c", script}
	_, _ = fmt.Fprintf(w, "$ ctr %s '%s'\n", strings.Join(args[:len(args)-1], " "), script)
	runCtx, cancel := context.WithTimeout(ctx, runTimeout)
	defer cancel()
	cmd := c.Ctr(runCtx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = io.MultiWriter(w, &stdout)
	cmd.Stderr = &stderr
	start := time.Now()
	err = cmd.Run()
	elapsed := time.Since(start)
	if err != nil {
		return fmt.Errorf("ctr run after %s: %w\nctr stderr: %s\ncontainerd log (%s): %s",
			elapsed.Round(time.Millisecond), err, strings.TrimSpace(stderr.String()), c.LogPath, tail(c.LogPath, 15))
	}
	if !strings.Contains(stdout.String(), "hello from a Veil micro-VM") {
		return fmt.Errorf("ctr run exited 0 but did not print the greeting (stderr: %s)", strings.TrimSpace(stderr.String()))
	}
	_, _ = fmt.Fprintf(w, "ctr run wall time: %s (ctr start to exit: VM boot, container, teardown)\n", elapsed.Round(time.Millisecond))
	return nil
}

// prerequisites names the make target that produces anything missing.
func prerequisites(cfg string) error {
	out := harness.OutputDir()
	checks := []struct{ path, fix string }{
		{cfg, "make setup"},
		{filepath.Join(out, "bin", "containerd-shim-veil-v2"), "make build"},
		{filepath.Join(out, "guest", "initramfs.cpio"), "make guest"},
		{filepath.Join(harness.CacheDir(), "kernel", "vmlinux"), "make setup"},
	}
	for _, c := range checks {
		if _, err := os.Stat(c.path); err != nil {
			return fmt.Errorf("%s missing (run '%s', or simply 'make demo'): %w", c.path, c.fix, err)
		}
	}
	return nil
}

// tail returns the last n lines of the file at p.
func tail(p string, n int) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Sprintf("(unreadable: %v)", err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
