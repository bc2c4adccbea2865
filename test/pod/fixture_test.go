package pod

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/test/criimage"
	"github.com/veil-runtime/veil/test/harness"
)

// fixture is a private containerd in CRI mode with a CRI client, and a
// Veil config whose state dir and allowed volume root are the test's own.
type fixture struct {
	t   testing.TB
	ctx context.Context
	c   *harness.Containerd
	rt  runtimeapi.RuntimeServiceClient
	img runtimeapi.ImageServiceClient
	// volumes is the host directory volumes.allowed_host_paths allows.
	volumes string
	// stateDir is the Veil config's state_dir.
	stateDir string
	// logs is the pods' log directory.
	logs string
	// removed records the pods removePod removed.
	removed map[string]bool
}

// newFixture starts the containerd; everything is removed in Cleanup.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	cfg := harness.SandboxConfig(t) // skips unless integration tests run
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f := &fixture{t: t, ctx: ctx, stateDir: cfg.StateDir, removed: map[string]bool{}}
	base := t.TempDir()
	f.volumes = filepath.Join(base, "volumes")
	f.logs = filepath.Join(base, "logs")
	for _, d := range []string{f.volumes, f.logs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Volumes.AllowedHostPaths = []string{f.volumes}
	b, err := toml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(base, "veil.toml")
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(cfgPath); err != nil {
		t.Fatalf("test config: %v", err)
	}
	sctx, scancel := context.WithTimeout(ctx, 2*time.Minute)
	defer scancel()
	c, err := harness.Start(sctx, harness.Options{CRI: &harness.CRIOptions{VeilConfig: cfgPath}})
	if err != nil {
		t.Fatalf("start containerd: %v", err)
	}
	f.c = c
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("containerd log tail:\n%s", tail(c.LogPath, 60))
		}
		if err := c.Stop(context.WithoutCancel(ctx)); err != nil {
			t.Errorf("stop containerd: %v", err)
		}
	})
	conn, err := grpc.NewClient("unix://"+c.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	f.rt = runtimeapi.NewRuntimeServiceClient(conn)
	f.img = runtimeapi.NewImageServiceClient(conn)
	for _, ref := range []string{criimage.Busybox} {
		pctx, pcancel := context.WithTimeout(ctx, time.Minute)
		_, err := f.img.PullImage(pctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
		pcancel()
		if err != nil {
			t.Fatalf("pull %s: %v", ref, err)
		}
	}
	return f
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// podConfig is a pod sandbox config with the test's defaults.
func (f *fixture) podConfig(name string) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Uid: name + "-uid", Namespace: "veil-test"},
		Hostname:     name,
		LogDirectory: filepath.Join(f.logs, name),
		Linux:        &runtimeapi.LinuxPodSandboxConfig{},
	}
}

// runPod starts a pod on handler and removes it (checking that nothing
// of it is left) when the test ends.
func (f *fixture) runPod(t testing.TB, handler string, cfg *runtimeapi.PodSandboxConfig) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, 2*time.Minute)
	defer cancel()
	resp, err := f.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: handler})
	if err != nil {
		t.Fatalf("RunPodSandbox %s on %s: %v", cfg.Metadata.Name, handler, err)
	}
	id := resp.PodSandboxId
	t.Cleanup(func() { f.removePod(t, id, handler) })
	return id
}

// removePod stops and removes a pod; for veil it then checks that the
// sandbox left no process, mount or state dir.
func (f *fixture) removePod(t testing.TB, id, handler string) {
	t.Helper()
	if f.removed[id] {
		return
	}
	f.removed[id] = true
	ctx, cancel := context.WithTimeout(context.WithoutCancel(f.ctx), 2*time.Minute)
	defer cancel()
	if _, err := f.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Errorf("StopPodSandbox %s: %v", id, err)
	}
	if _, err := f.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Errorf("RemovePodSandbox %s: %v", id, err)
	}
	if handler == harness.HandlerVeil {
		if l := harness.Leftovers(f.stateDir, id); len(l) > 0 {
			t.Errorf("pod %s left behind:\n  %s", id, strings.Join(l, "\n  "))
		}
	}
}

// containerConfig is a busybox container running sh -c script.
func containerConfig(name, script string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: criimage.Busybox},
		Command:  []string{"sh", "-c", script},
		LogPath:  name + ".log",
		Linux:    &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{}},
	}
}

// createContainer creates a container in pod and returns its id.
func (f *fixture) createContainer(t testing.TB, pod string, podCfg *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, time.Minute)
	defer cancel()
	resp, err := f.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: podCfg})
	if err != nil {
		return "", err
	}
	return resp.ContainerId, nil
}

// startContainer creates and starts a container, failing the test on error.
func (f *fixture) startContainer(t testing.TB, pod string, podCfg *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) string {
	t.Helper()
	id, err := f.createContainer(t, pod, podCfg, cfg)
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", cfg.Metadata.Name, err)
	}
	ctx, cancel := context.WithTimeout(f.ctx, time.Minute)
	defer cancel()
	if _, err := f.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("StartContainer %s: %v", cfg.Metadata.Name, err)
	}
	return id
}

// execSync runs cmd in a container and returns its stdout, stderr and
// exit code.
func (f *fixture) execSync(t testing.TB, id string, cmd ...string) (string, string, int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, time.Minute)
	defer cancel()
	resp, err := f.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: 30})
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
	resp, err := f.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatalf("ContainerStatus %s: %v", id, err)
	}
	return resp.Status
}

// eventually polls check until it returns nil or the deadline passes
// (observing a condition, not sleeping in place of one).
func eventually(t testing.TB, what string, d time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, d, err)
		}
		<-tick.C
	}
}

// waitExited waits until a container exited and returns its status.
func (f *fixture) waitExited(t testing.TB, id string, d time.Duration) *runtimeapi.ContainerStatus {
	t.Helper()
	var st *runtimeapi.ContainerStatus
	eventually(t, "container "+id+" exits", d, func() error {
		st = f.status(t, id)
		if st.State != runtimeapi.ContainerState_CONTAINER_EXITED {
			return fmt.Errorf("state %v", st.State)
		}
		return nil
	})
	return st
}

// logOf returns the CRI log of a container (the message parts).
func logOf(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var out bytes.Buffer
	for _, line := range strings.Split(string(b), "\n") {
		// <time> <stream> <tag> <message>
		parts := strings.SplitN(line, " ", 4)
		if len(parts) == 4 {
			out.WriteString(parts[3])
			if parts[2] == "F" {
				out.WriteByte('\n')
			}
		}
	}
	return out.String()
}
