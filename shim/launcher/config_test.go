package launcher

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/shim/task"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSandboxConfigPrecedence: runtime option ConfigPath > $VEIL_CONFIG >
// /etc/veil/config.toml, then the annotations.
func TestSandboxConfigPrecedence(t *testing.T) {
	envFile := writeConfig(t, "[guest]\nvcpus = 2\nmemory_mib = 300\n")
	optFile := writeConfig(t, "state_dir = \"/run/veil/gold\"\n[guest]\nvcpus = 3\n")
	cases := []struct {
		name        string
		env         string
		opts        task.SandboxOptions
		wantVCPUs   uint32
		wantMemory  uint32
		wantState   string
		wantErr     string
		wantInvalid bool
	}{
		{name: "env file", env: envFile, wantVCPUs: 2, wantMemory: 300, wantState: "/run/veil/sandboxes"},
		{name: "ConfigPath beats env (and is read whole, over the defaults)", env: envFile, opts: task.SandboxOptions{ConfigPath: optFile}, wantVCPUs: 3, wantMemory: 256, wantState: "/run/veil/gold"},
		{name: "annotations beat ConfigPath", env: envFile, opts: task.SandboxOptions{ConfigPath: optFile, Annotations: map[string]string{config.AnnotationGuestVCPUs: "4"}}, wantVCPUs: 4, wantMemory: 256, wantState: "/run/veil/gold"},
		{name: "annotations over env file", env: envFile, opts: task.SandboxOptions{Annotations: map[string]string{config.AnnotationGuestMemoryMiB: "1024"}}, wantVCPUs: 2, wantMemory: 1024, wantState: "/run/veil/sandboxes"},
		{name: "missing ConfigPath file", env: envFile, opts: task.SandboxOptions{ConfigPath: "/nonexistent/veil.toml"}, wantErr: "runtime option ConfigPath: read config: open /nonexistent/veil.toml: no such file or directory"},
		{name: "unknown annotation", env: envFile, opts: task.SandboxOptions{Annotations: map[string]string{"io.veil.config.guest.cpus": "2"}}, wantErr: `invalid io.veil annotation: "io.veil.config.guest.cpus" is not allowed`, wantInvalid: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(config.EnvPath, tc.env)
			l, err := New()
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := sandboxConfig(l.Config(), tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if errdefs.IsInvalidArgument(err) != tc.wantInvalid {
					t.Errorf("InvalidArgument = %v, want %v (%v)", !tc.wantInvalid, tc.wantInvalid, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Guest.VCPUs != tc.wantVCPUs || cfg.Guest.MemoryMiB != tc.wantMemory || cfg.StateDir != tc.wantState {
				t.Fatalf("vcpus %d memory %d state_dir %s, want %d %d %s", cfg.Guest.VCPUs, cfg.Guest.MemoryMiB, cfg.StateDir, tc.wantVCPUs, tc.wantMemory, tc.wantState)
			}
		})
	}
}

// TestForConfig: the delete action and a failed stop look for a sandbox
// under the state_dir of the config file it was started with.
func TestForConfig(t *testing.T) {
	file := writeConfig(t, "state_dir = \"/run/veil/gold\"\n")
	vm := &Launcher{cfg: config.Default()}
	cases := []struct {
		name      string
		l         *Launcher
		path      string
		wantState string
		wantErr   string
	}{
		{name: "no ConfigPath keeps the launcher", l: vm, wantState: "/run/veil/sandboxes"},
		{name: "ConfigPath's state_dir", l: vm, path: file, wantState: "/run/veil/gold"},
		{name: "missing file", l: vm, path: "/nonexistent.toml", wantErr: "runtime option ConfigPath: read config"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := tc.l.ForConfig(tc.path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := l.(*Launcher).Config().StateDir; got != tc.wantState {
				t.Fatalf("StateDir = %q, want %q", got, tc.wantState)
			}
		})
	}
}
