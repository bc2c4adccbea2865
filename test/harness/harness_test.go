package harness

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"github.com/veil-runtime/veil/test/image"
	"github.com/veil-runtime/veil/test/integration"
)

func TestConfig(t *testing.T) {
	c := &Containerd{Dir: "/d", Address: "/d/containerd.sock"}
	cfg := c.config("# extra")
	for _, want := range []string{
		"version = 4\n",
		`root = "/d/root"`,
		`[plugins."io.containerd.server.v1.grpc"]` + "\n  address = \"/d/containerd.sock\"",
		`"io.containerd.grpc.v1.cri"`,
		"# extra",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %q:\n%s", want, cfg)
		}
	}
}

func TestConfigCRI(t *testing.T) {
	c := &Containerd{Dir: "/d", Address: "/d/containerd.sock", cri: &CRIOptions{VeilConfig: "/etc/veil.toml"}}
	cfg := c.config("")
	tests := []struct {
		name    string
		text    string
		present bool
	}{
		{"cri and nri enabled", `disabled_plugins = []`, true},
		{"sandbox image pinned", `sandbox = "registry.k8s.io/pause:3.10.2"`, true},
		{"registry mirrors", `config_path = "/d/certs.d"`, true},
		{"oom score restricted", "restrict_oom_score_adj = true", true},
		{"runc handler", "runtimes.runc]\n    runtime_type = \"io.containerd.runc.v2\"", true},
		{"runc cgroupfs", "SystemdCgroup = false", true},
		{"veil handler", "runtimes.veil]\n    runtime_type = \"io.containerd.veil.v2\"", true},
		{"veil annotations", `pod_annotations = ["io.veil.*"]`, true},
		{"veil config path", `ConfigPath = "/etc/veil.toml"`, true},
		{"cni conf dir", `conf_dir = "/d/cni/net.d"`, true},
		{"nri socket", `socket_path = "/d/nri.sock"`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Contains(cfg, tc.text); got != tc.present {
				t.Errorf("config contains %q = %v, want %v:\n%s", tc.text, got, tc.present, cfg)
			}
		})
	}
}

func TestMirrorHostsTOML(t *testing.T) {
	r := &Registry{Addr: "127.0.0.1:5000"}
	tests := []struct {
		host, want string
	}{
		{"registry.k8s.io", "server = \"https://registry.k8s.io\"\n\n[host.\"http://127.0.0.1:5000/v2/registry.k8s.io\"]\n  capabilities = [\"pull\", \"resolve\"]\n  override_path = true\n"},
		{"docker.io", "server = \"https://registry-1.docker.io\"\n\n[host.\"http://127.0.0.1:5000/v2/docker.io\"]\n  capabilities = [\"pull\", \"resolve\"]\n  override_path = true\n"},
	}
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			if got := r.mirrorHostsTOML(tc.host); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// TestContainerdRunc runs busybox under runc through the private
// containerd, then checks Stop leaves nothing behind.
func TestContainerdRunc(t *testing.T) {
	integration.Require(t, integration.Root)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	c, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = c.Stop(ctx)
		}
	}()

	const ref = "docker.io/veil/busybox:test"
	tarPath, err := image.BuildBusybox(t.TempDir(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Import(ctx, tarPath); err != nil {
		t.Fatal(err)
	}
	out, err := c.CtrOutput(ctx, "run", "--rm", "--runtime", "io.containerd.runc.v2", ref, "hello-runc", "sh", "-c", "echo hello; id -u")
	if err != nil {
		t.Fatalf("%v; containerd log: %s", err, c.logTail())
	}
	if got, want := strings.TrimSpace(string(out)), "hello\n0"; got != want {
		t.Errorf("ctr run printed %q, want %q", got, want)
	}

	dir, netns := c.Dir, c.NetNS
	stopped = true
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Stop (%v)", dir, err)
	}
	if _, err := os.Stat(netnsPath(netns)); !os.IsNotExist(err) {
		t.Errorf("netns %s still exists after Stop (%v)", netns, err)
	}
	if m, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir)); err != nil || len(m) > 0 {
		t.Errorf("mounts left under %s: %v (%v)", dir, m, err)
	}
	if p := c.shimPids(); len(p) > 0 {
		t.Errorf("shims left: %v", p)
	}
}
