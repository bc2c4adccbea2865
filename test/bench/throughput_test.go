package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/sandbox"
	"github.com/veil-runtime/veil/runtime/statedir"
)

const streamBytes = 64 << 20

var streamCmd = []string{"head", "-c", fmt.Sprint(streamBytes), "/dev/zero"}

// BenchmarkStdoutThroughput: 64 MiB of container stdout as it reaches the
// host through Veil (guest stream → shim → containerd FIFO → ctr → a pipe
// read by the benchmark) against the same process's stdout read straight
// from its guest stream connection in a sandbox driven through the agent
// API (no shim, FIFO or ctr). Both time first byte to EOF, so the VM boot
// is excluded. Target: veil / raw ≥ 0.7.
func BenchmarkStdoutThroughput(b *testing.B) {
	c, cfg := startContainerd(b)
	r := runTimed(b, c, veilRuntime, "bench-stream", streamCmd...)
	if r.bytes != streamBytes {
		b.Fatalf("ctr delivered %d bytes, want %d", r.bytes, streamBytes)
	}
	veil := float64(r.bytes) / (r.eof - r.firstOutput).Seconds()

	rawBytes, rawDur := rawStream(b, cfg, "bench-raw")
	if rawBytes != streamBytes {
		b.Fatalf("raw stream delivered %d bytes, want %d", rawBytes, streamBytes)
	}
	raw := float64(rawBytes) / rawDur.Seconds()
	b.ReportMetric(veil/(1<<20), "veil_MiB/s")
	b.ReportMetric(raw/(1<<20), "raw_MiB/s")
	b.ReportMetric(veil/raw, "ratio")
	b.Logf("64 MiB stdout: veil (ctr) %.1f MiB/s, raw guest stream %.1f MiB/s, ratio %.2f (target ≥ 0.7)", veil/(1<<20), raw/(1<<20), veil/raw)
}

// rawStream runs streamCmd in a sandbox through the agent API and reads
// its stdout connection directly.
func rawStream(b *testing.B, cfg *config.Config, id string) (int64, time.Duration) {
	b.Helper()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), "bench"), 3*time.Minute)
	defer cancel()
	_ = sandbox.Cleanup(ctx, cfg, id)
	s, err := sandbox.Start(ctx, id, cfg, sandbox.Options{Hostname: id})
	if err != nil {
		b.Fatalf("sandbox start: %v", err)
	}
	defer func() {
		if err := s.Stop(ctx); err != nil {
			b.Errorf("sandbox stop: %v", err)
		}
	}()
	rootfs := b.TempDir()
	if err := busyboxRootfs(rootfs); err != nil {
		b.Fatal(err)
	}
	if _, err := s.Share().AddContainer(ctx, id, statedir.ContainerFS{BundleRootfs: rootfs}); err != nil {
		b.Fatal(err)
	}
	// An absolute path: this rootfs has no image config, hence no PATH.
	args := append([]string{"/bin/" + streamCmd[0]}, streamCmd[1:]...)
	spec, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: id}, oci.WithProcessArgs(args...))
	if err != nil {
		b.Fatal(err)
	}
	specJSON, err := jsonMarshal(spec)
	if err != nil {
		b.Fatal(err)
	}
	conn, err := s.DialStream(ctx, api.StreamHeader{ContainerID: id, Stream: api.StreamStdout})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	if _, err := s.Agent().CreateContainer(ctx, &api.CreateContainerRequest{
		ContainerId: id, Spec: specJSON, Rootfs: filepath.Join(api.SharedDir, id, "rootfs"),
		Stdio: &api.Stdio{Stdout: true},
	}); err != nil {
		b.Fatalf("create container: %v", err)
	}
	if _, err := s.Agent().StartContainer(ctx, &api.ContainerRequest{ContainerId: id}); err != nil {
		b.Fatalf("start container: %v", err)
	}
	buf := make([]byte, 128<<10)
	var n int64
	var first time.Time
	for {
		k, err := conn.Read(buf)
		if k > 0 && n == 0 {
			first = time.Now()
		}
		n += int64(k)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.Fatalf("read stream: %v", err)
		}
	}
	d := time.Since(first)
	if _, err := s.Agent().WaitProcess(ctx, &api.ProcessRequest{ContainerId: id}); err != nil {
		b.Fatalf("wait: %v", err)
	}
	if _, err := s.Agent().RemoveContainer(ctx, &api.RemoveContainerRequest{ContainerId: id}); err != nil {
		b.Fatalf("remove container: %v", err)
	}
	if err := os.RemoveAll(filepath.Dir(rootfs)); err != nil {
		b.Fatal(err)
	}
	return n, d
}

// busyboxRootfs makes a minimal rootfs: a static busybox and the applets
// the benchmark runs.
func busyboxRootfs(dir string) error {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("raw stream rootfs needs a static busybox on PATH: %w", err)
	}
	for _, d := range []string{"bin", "dev", "proc", "sys", "tmp", "etc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), data, 0o755); err != nil {
		return err
	}
	for _, a := range []string{"sh", "head"} {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			return err
		}
	}
	return nil
}
