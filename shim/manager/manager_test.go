package manager

import (
	"strings"
	"testing"

	"os"
	"path/filepath"

	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/veil-runtime/veil/shim/bundle"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestCleanupStateRefusesHostileIDs: the delete action never builds paths
// from ids that leave the state dir.
func TestCleanupStateRefusesHostileIDs(t *testing.T) {
	cases := []struct {
		name, id, spec, want string
	}{
		{name: "group annotation", id: "c1", spec: `{"annotations":{"io.containerd.veil.v2.group":"../.."}}`, want: `invalid sandbox id "../.."`},
		{name: "cri sandbox id", id: "c1", spec: `{"annotations":{"io.kubernetes.cri.sandbox-id":"a/../../b"}}`, want: `invalid sandbox id "a/../../b"`},
		{name: "container id", id: "..", want: `invalid container id ".."`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.spec != "" {
				if err := os.WriteFile(filepath.Join(dir, bundle.SpecFile), []byte(tc.spec), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := cleanupState(dir, tc.id)
			if err == nil || !strings.Contains(err.Error(), tc.want) || status.Code(errgrpc.ToGRPC(err)) != codes.InvalidArgument {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestCleanupState(t *testing.T) {
	withState := t.TempDir()
	if err := bundle.WriteShimState(withState, bundle.ShimState{SandboxID: "sb"}); err != nil {
		t.Fatal(err)
	}
	withPodSpec := t.TempDir()
	spec := `{"annotations":{"io.kubernetes.cri.sandbox-id":"pod"}}`
	if err := os.WriteFile(filepath.Join(withPodSpec, bundle.SpecFile), []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, bundle string
		want         bundle.ShimState
	}{
		{name: "recorded", bundle: withState, want: bundle.ShimState{SandboxID: "sb"}},
		{name: "derived from pod spec", bundle: withPodSpec, want: bundle.ShimState{SandboxID: "pod"}},
		{name: "derived from id", bundle: t.TempDir(), want: bundle.ShimState{SandboxID: "c1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cleanupState(tc.bundle, "c1")
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
