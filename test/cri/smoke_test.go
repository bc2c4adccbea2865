package cri

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/veil-runtime/veil/test/criimage"
	"github.com/veil-runtime/veil/test/harness"
	"github.com/veil-runtime/veil/test/integration"
)

// TestSmoke runs, for each runtime handler, one pod with one container
// that echoes, through containerd's CRI plugin: pull through the mirror,
// RunPodSandbox, CreateContainer/StartContainer, the log, stop and remove.
func TestSmoke(t *testing.T) {
	integration.Require(t, integration.Root, integration.VM)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := harness.Start(ctx, harness.Options{CRI: &harness.CRIOptions{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(context.Background()); err != nil {
			t.Errorf("stop containerd: %v", err)
		}
	})
	cl, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cl.Close() }()

	tests := []struct {
		name    string
		handler string
	}{
		{"runc", harness.HandlerRunc},
		{"veil", harness.HandlerVeil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
			defer cancel()
			logDir := t.TempDir()
			pod := PodConfig("smoke-"+tc.name, logDir)
			if _, err := cl.Pull(ctx, criimage.Busybox, pod); err != nil {
				t.Fatal(err)
			}
			podID, err := cl.RunPod(ctx, pod, tc.handler)
			if err != nil {
				t.Fatalf("%v\ncontainerd log:\n%s", err, logTail(c.LogPath))
			}
			defer func() {
				if err := cl.RemovePod(context.WithoutCancel(ctx), podID); err != nil {
					t.Errorf("remove pod: %v", err)
				}
			}()
			cfg := Container("echo", criimage.Busybox, "sh", "-c", "echo hello from $(hostname)")
			id, err := cl.StartContainer(ctx, podID, pod, cfg)
			if err != nil {
				t.Fatalf("%v\ncontainerd log:\n%s", err, logTail(c.LogPath))
			}
			st, err := cl.WaitExited(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if st.GetExitCode() != 0 {
				t.Errorf("exit code %d (%s: %s)", st.GetExitCode(), st.GetReason(), st.GetMessage())
			}
			out, err := ReadLog(LogPath(pod, cfg))
			if err != nil {
				t.Fatal(err)
			}
			if want := "hello from smoke-" + tc.name + "\n"; out != want {
				t.Errorf("log = %q, want %q", out, want)
			}
		})
	}
}

// logTail returns the last lines of a log file, for failure messages.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}
