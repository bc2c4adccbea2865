package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/test/harness"
	"github.com/veil-runtime/veil/test/image"
	"github.com/veil-runtime/veil/test/integration"
)

const (
	veilRuntime = "io.containerd.veil.v2"
	runcRuntime = "io.containerd.runc.v2"
	imageRef    = "localhost/veil/busybox:bench"
	// cmdTimeout bounds one ctr call (a TCG boot takes ~2 s).
	cmdTimeout = 3 * time.Minute
)

// veilConfig loads the config `make setup` writes into the cache.
func veilConfig(b *testing.B) (*config.Config, string) {
	b.Helper()
	path := harness.ConfigPath()
	cfg, err := config.Load(path)
	if err != nil {
		b.Fatalf("veil config (made by make setup): %v", err)
	}
	return cfg, path
}

// startContainerd starts a private containerd with Veil's config and the
// busybox image imported.
func startContainerd(b *testing.B) (*harness.Containerd, *config.Config) {
	b.Helper()
	integration.Require(b, integration.Root, integration.VM)
	cfg, cfgPath := veilConfig(b)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := harness.Start(ctx, harness.Options{Env: []string{config.EnvPath + "=" + cfgPath}})
	if err != nil {
		b.Fatalf("start containerd: %v", err)
	}
	b.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Stop(sctx); err != nil {
			b.Errorf("stop containerd: %v", err)
		}
	})
	tar, err := image.BuildBusybox(b.TempDir(), imageRef)
	if err != nil {
		b.Fatalf("build busybox image: %v", err)
	}
	mustCtr(b, c, "images", "import", tar)
	return c, cfg
}

// mustCtr runs ctr, bounded, and fails unless it exits 0.
func mustCtr(b *testing.B, c *harness.Containerd, args ...string) string {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := c.Ctr(ctx, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		b.Fatalf("ctr %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// timedRun is one `ctr run --rm`: time to the first stdout byte, time to
// exit, and the bytes of stdout it counted.
type timedRun struct {
	firstOutput, eof, total time.Duration
	bytes                   int64
	// started is when ctr was launched.
	started time.Time
}

// runTimed runs a container and times its output as ctr delivers it.
func runTimed(b *testing.B, c *harness.Containerd, runtime, id string, argv ...string) timedRun {
	b.Helper()
	return runTimedFlags(b, c, nil, runtime, id, argv...)
}

// runTimedFlags is runTimed with more flags for ctr run.
func runTimedFlags(b *testing.B, c *harness.Containerd, flags []string, runtime, id string, argv ...string) timedRun {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	args := append(append(append([]string{"run", "--rm", "--runtime", runtime}, flags...), imageRef, id), argv...)
	cmd := c.Ctr(ctx, args...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	var r timedRun
	start := time.Now()
	r.started = start
	if err := cmd.Start(); err != nil {
		b.Fatalf("ctr run: %v", err)
	}
	buf := make([]byte, 256<<10)
	for {
		n, err := stdout.Read(buf)
		if n > 0 && r.bytes == 0 {
			r.firstOutput = time.Since(start)
		}
		r.bytes += int64(n)
		if err == io.EOF {
			r.eof = time.Since(start)
			break
		}
		if err != nil {
			b.Fatalf("read ctr stdout: %v", err)
		}
	}
	if err := cmd.Wait(); err != nil {
		b.Fatalf("ctr %s: %v (timed out: %v)\nstderr: %s", strings.Join(args, " "), err, ctx.Err() != nil, errb.String())
	}
	r.total = time.Since(start)
	return r
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
