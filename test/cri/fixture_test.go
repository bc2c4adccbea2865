package cri

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/test/criimage"
	"github.com/veil-runtime/veil/test/harness"
)

// fixture is a private containerd in CRI mode with a CRI client, and a
// Veil config whose state dir and allowed volume root are the test's own.
type fixture struct {
	ctx context.Context
	c   *harness.Containerd
	cl  *Client
	// volumes is the host directory volumes.allowed_host_paths allows.
	volumes string
	// stateDir is the Veil config's state_dir.
	stateDir string
	// logs is the pods' log directory.
	logs string
	// removed records the pods removePod removed.
	removed map[string]bool
	// shared is the fixture this one was made of.
	shared *Fixture
}

// newFixture starts the shared CRI fixture (NewFixture) with a Veil
// config whose allowed volume root is the test's own. tune adjusts the
// Veil config the veil handler runs with.
func newFixture(t testing.TB, tune ...func(*config.Config)) *fixture {
	t.Helper()
	volumes := filepath.Join(t.TempDir(), "volumes")
	if err := os.MkdirAll(volumes, 0o755); err != nil {
		t.Fatal(err)
	}
	allow := func(cfg *config.Config) { cfg.Volumes.AllowedHostPaths = []string{volumes} }
	s := NewFixture(t, logTail, append([]func(*config.Config){allow}, tune...)...)
	return &fixture{ctx: s.Ctx, c: s.C, cl: s.Client, volumes: volumes, stateDir: s.StateDir, logs: s.Logs, removed: map[string]bool{}, shared: s}
}

// modes runs test once with the pool off (cold starts) and once with a
// warm pool of two VMs, where every veil pod must start warm.
func modes(t *testing.T, test func(t *testing.T, f *fixture), tune ...func(*config.Config)) {
	t.Run("cold", func(t *testing.T) { test(t, newFixture(t, tune...)) })
	t.Run("warm", func(t *testing.T) { test(t, newFixture(t, append(tune, WarmPool(2))...)) })
}

// podConfig is a pod sandbox config with the test's log directory.
func (f *fixture) podConfig(name string) *runtimeapi.PodSandboxConfig {
	return PodConfig(name, filepath.Join(f.logs, name))
}

// runPod starts a pod on handler and removes it (checking that nothing
// of it is left) when the test ends.
func (f *fixture) runPod(t testing.TB, handler string, cfg *runtimeapi.PodSandboxConfig) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, 2*time.Minute)
	defer cancel()
	if handler == harness.HandlerVeil {
		f.shared.WaitPoolFull(t)
	}
	id, err := f.cl.RunPod(ctx, cfg, handler)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.removePod(t, id, handler) })
	if handler == harness.HandlerVeil {
		f.shared.CheckWarm(t, id)
	}
	return id
}

// removePod stops and removes a pod once; for veil it then checks that
// the sandbox left no process, mount or state dir.
func (f *fixture) removePod(t testing.TB, id, handler string) {
	t.Helper()
	if f.removed[id] {
		return
	}
	f.removed[id] = true
	ctx, cancel := context.WithTimeout(context.WithoutCancel(f.ctx), 2*time.Minute)
	defer cancel()
	if err := f.cl.RemovePod(ctx, id); err != nil {
		t.Error(err)
	}
	if handler == harness.HandlerVeil {
		if l := harness.Leftovers(f.stateDir, id); len(l) > 0 {
			t.Errorf("pod %s left behind:\n  %s", id, strings.Join(l, "\n  "))
		}
	}
}

// shContainer is a busybox container running sh -c script, with an
// (empty) resources section for tests to fill.
func shContainer(name, script string) *runtimeapi.ContainerConfig {
	cfg := Container(name, criimage.Busybox, "sh", "-c", script)
	cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{}
	return cfg
}

// createContainer creates a container in pod and returns its id.
func (f *fixture) createContainer(pod string, podCfg *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) (string, error) {
	ctx, cancel := context.WithTimeout(f.ctx, time.Minute)
	defer cancel()
	resp, err := f.cl.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: podCfg})
	if err != nil {
		return "", err
	}
	return resp.ContainerId, nil
}

// startContainer creates and starts a container, failing the test on error.
func (f *fixture) startContainer(t testing.TB, pod string, podCfg *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, time.Minute)
	defer cancel()
	id, err := f.cl.StartContainer(ctx, pod, podCfg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// execSync runs cmd in a container and returns its stdout, stderr and
// exit code.
func (f *fixture) execSync(t testing.TB, id string, cmd ...string) (string, string, int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, time.Minute)
	defer cancel()
	resp, err := f.cl.Runtime.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: 30})
	if err != nil {
		t.Fatalf("ExecSync %v in %s: %v", cmd, id, err)
	}
	return string(resp.Stdout), string(resp.Stderr), resp.ExitCode
}

// mustExec runs cmd and fails unless it exits 0; it returns stdout.
func (f *fixture) mustExec(t testing.TB, id string, cmd ...string) string {
	t.Helper()
	out, errOut, code := f.execSync(t, id, cmd...)
	if code != 0 {
		t.Fatalf("%v exited %d: stdout %q stderr %q", cmd, code, out, errOut)
	}
	return out
}

// status returns a container's CRI status.
func (f *fixture) status(t testing.TB, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, 30*time.Second)
	defer cancel()
	resp, err := f.cl.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatalf("ContainerStatus %s: %v", id, err)
	}
	return resp.Status
}

// waitExited waits until a container exited and returns its status.
func (f *fixture) waitExited(t testing.TB, id string, d time.Duration) *runtimeapi.ContainerStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, d)
	defer cancel()
	st, err := f.cl.WaitExited(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// logHas returns nil once the container's log holds want.
func logHas(path, want string) error {
	l, err := ReadLog(path)
	if err != nil {
		return err
	}
	if !strings.Contains(l, want) {
		return fmt.Errorf("log %q lacks %q", l, want)
	}
	return nil
}
