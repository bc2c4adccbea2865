package task

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
	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/shim/bundle"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
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
	if err := os.WriteFile(filepath.Join(f.bundle, bundle.SpecFile), []byte(spec), 0o600); err != nil {
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
	b, err := os.ReadFile(filepath.Join(f.bundle, bundle.StateFile))
	if err != nil {
		t.Fatal(err)
	}
	var st bundle.ShimState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if st.ConfigPath != "/etc/veil/gold.toml" {
		t.Fatalf("bundle state %s lacks the ConfigPath", b)
	}
}
