package shim

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veil-runtime/veil/runtime/config"
)

// runtimeOptionsAny encodes opts as containerd does: typeurl names an
// unregistered proto message by its full name, without a URL prefix.
func runtimeOptionsAny(t *testing.T, prefix string, opts *runtimeoptions.Options) *anypb.Any {
	t.Helper()
	b, err := proto.Marshal(opts)
	if err != nil {
		t.Fatal(err)
	}
	return &anypb.Any{TypeUrl: prefix + "runtimeoptions.v1.Options", Value: b}
}

func TestConfigPathOption(t *testing.T) {
	other, err := anypb.New(timestamppb.Now())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		opts    *anypb.Any
		want    string
		wantErr string
	}{
		{name: "no options", opts: nil},
		{name: "empty any", opts: &anypb.Any{}},
		{name: "config path as containerd sends it", opts: runtimeOptionsAny(t, "", &runtimeoptions.Options{ConfigPath: "/etc/veil/gold.toml"}), want: "/etc/veil/gold.toml"},
		{name: "with a type URL prefix", opts: runtimeOptionsAny(t, "type.googleapis.com/", &runtimeoptions.Options{ConfigPath: "/etc/veil/a.toml"}), want: "/etc/veil/a.toml"},
		{name: "CRI options table without ConfigPath (ConfigBody only)", opts: runtimeOptionsAny(t, "", &runtimeoptions.Options{ConfigBody: []byte("Foo = 1\n")})},
		{name: "relative path", opts: runtimeOptionsAny(t, "", &runtimeoptions.Options{ConfigPath: "veil.toml"}), wantErr: `ConfigPath "veil.toml": must be an absolute path`},
		{name: "another options type", opts: other, wantErr: `runtime options of type "type.googleapis.com/google.protobuf.Timestamp": Veil takes runtimeoptions.v1.Options`},
		{name: "garbage", opts: &anypb.Any{TypeUrl: "runtimeoptions.v1.Options", Value: []byte{0xff, 0xff}}, wantErr: "decode runtime options"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := configPathOption(tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if !errdefs.IsInvalidArgument(err) {
					t.Errorf("err %v is not InvalidArgument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("ConfigPath = %q, want %q", got, tc.want)
			}
		})
	}
}

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
		opts        SandboxOptions
		wantVCPUs   uint32
		wantMemory  uint32
		wantState   string
		wantErr     string
		wantInvalid bool
	}{
		{name: "env file", env: envFile, wantVCPUs: 2, wantMemory: 300, wantState: "/run/veil/sandboxes"},
		{name: "ConfigPath beats env (and is read whole, over the defaults)", env: envFile, opts: SandboxOptions{ConfigPath: optFile}, wantVCPUs: 3, wantMemory: 256, wantState: "/run/veil/gold"},
		{name: "annotations beat ConfigPath", env: envFile, opts: SandboxOptions{ConfigPath: optFile, Annotations: map[string]string{config.AnnotationGuestVCPUs: "4"}}, wantVCPUs: 4, wantMemory: 256, wantState: "/run/veil/gold"},
		{name: "annotations over env file", env: envFile, opts: SandboxOptions{Annotations: map[string]string{config.AnnotationGuestMemoryMiB: "1024"}}, wantVCPUs: 2, wantMemory: 1024, wantState: "/run/veil/sandboxes"},
		{name: "missing ConfigPath file", env: envFile, opts: SandboxOptions{ConfigPath: "/nonexistent/veil.toml"}, wantErr: "runtime option ConfigPath: read config: open /nonexistent/veil.toml: no such file or directory"},
		{name: "unknown annotation", env: envFile, opts: SandboxOptions{Annotations: map[string]string{"io.veil.config.guest.cpus": "2"}}, wantErr: `invalid io.veil annotation: "io.veil.config.guest.cpus" is not allowed`, wantInvalid: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(config.EnvPath, tc.env)
			l, err := newVMLauncher()
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := sandboxConfig(l.(*vmLauncher).cfg, tc.opts)
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

func TestLauncherFor(t *testing.T) {
	file := writeConfig(t, "state_dir = \"/run/veil/gold\"\n")
	vm := &vmLauncher{cfg: config.Default()}
	cases := []struct {
		name      string
		l         Launcher
		path      string
		wantState string
		wantErr   string
	}{
		{name: "no ConfigPath keeps the launcher", l: vm, wantState: "/run/veil/sandboxes"},
		{name: "ConfigPath's state_dir", l: vm, path: file, wantState: "/run/veil/gold"},
		{name: "missing file", l: vm, path: "/nonexistent.toml", wantErr: "runtime option ConfigPath: read config"},
		{name: "other launchers are kept", l: &fakeLauncher{}, path: file, wantState: ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := launcherFor(tc.l, tc.path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := l.StateDir(); got != tc.wantState {
				t.Fatalf("StateDir = %q, want %q", got, tc.wantState)
			}
		})
	}
}

// recordingLauncher records the options a sandbox was started with.
type recordingLauncher struct {
	Launcher
	got SandboxOptions
}

func (l *recordingLauncher) Start(ctx context.Context, id string, opts SandboxOptions) (PodVM, error) {
	l.got = opts
	return l.Launcher.Start(ctx, id, opts)
}

// TestCreatePassesConfigOverrides: Create hands the runtime option
// ConfigPath and the spec's annotations to the launcher and records the
// path in the bundle for the delete action; bad options fail Create.
func TestCreatePassesConfigOverrides(t *testing.T) {
	f := newFixture(t)
	rl := &recordingLauncher{Launcher: f.svc.launcher}
	f.svc.launcher = rl
	spec := `{"ociVersion":"1.0.2","hostname":"h","annotations":{"io.veil.config.guest.vcpus":"2"}}`
	if err := os.WriteFile(filepath.Join(f.bundle, specFile), []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}

	_, err := f.svc.Create(f.ctx, &taskAPI.CreateTaskRequest{ID: "c0", Bundle: f.bundle,
		Options: runtimeOptionsAny(t, "", &runtimeoptions.Options{ConfigPath: "relative.toml"})})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "must be an absolute path") {
		t.Fatalf("create with a relative ConfigPath: %v", err)
	}

	_, err = f.svc.Create(f.ctx, &taskAPI.CreateTaskRequest{ID: "c1", Bundle: f.bundle,
		Options: runtimeOptionsAny(t, "", &runtimeoptions.Options{ConfigPath: "/etc/veil/gold.toml"})})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if rl.got.ConfigPath != "/etc/veil/gold.toml" || rl.got.Annotations[config.AnnotationGuestVCPUs] != "2" {
		t.Fatalf("launcher got %+v", rl.got)
	}
	b, err := os.ReadFile(filepath.Join(f.bundle, stateFile))
	if err != nil {
		t.Fatal(err)
	}
	var st shimState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if st.ConfigPath != "/etc/veil/gold.toml" {
		t.Fatalf("bundle state %s lacks the ConfigPath", b)
	}
}

// TestCreateRefusesUnknownAnnotation: the VM launcher refuses a bad
// annotation before starting anything, and Create returns the message as
// InvalidArgument, which is what ctr prints.
func TestCreateRefusesUnknownAnnotation(t *testing.T) {
	f := newFixture(t)
	f.svc.launcher = &vmLauncher{cfg: config.Default()}
	spec := `{"ociVersion":"1.0.2","annotations":{"io.veil.config.guest.memory":"512"}}`
	if err := os.WriteFile(filepath.Join(f.bundle, specFile), []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := f.svc.Create(f.ctx, &taskAPI.CreateTaskRequest{ID: "c1", Bundle: f.bundle})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("code %s (%v), want InvalidArgument", status.Code(err), err)
	}
	// Error details would make ctr print one extra line per wrapped error.
	if d := status.Convert(err).Details(); len(d) != 0 {
		t.Errorf("status carries details %v", d)
	}
	for _, w := range []string{"start sandbox c1", `invalid io.veil annotation: "io.veil.config.guest.memory" is not allowed`, "io.veil.config.guest.memory_mib"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	t.Logf("ctr would print: %v", err)
}
