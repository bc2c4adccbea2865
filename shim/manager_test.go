package shim

import (
	"strings"
	"testing"

	"os"
	"path/filepath"

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
			bundle := t.TempDir()
			if tc.spec != "" {
				writeFile(t, bundle, specFile, tc.spec)
			}
			_, err := cleanupState(bundle, tc.id, "/state")
			if err == nil || !strings.Contains(err.Error(), tc.want) || status.Code(toService(err)) != codes.InvalidArgument {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestCleanupState(t *testing.T) {
	withState := t.TempDir()
	if err := writeShimState(withState, shimState{SandboxID: "sb"}); err != nil {
		t.Fatal(err)
	}
	withPodSpec := t.TempDir()
	spec := `{"annotations":{"io.kubernetes.cri.sandbox-id":"pod"}}`
	if err := os.WriteFile(filepath.Join(withPodSpec, specFile), []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, bundle string
		want         shimState
	}{
		{name: "recorded", bundle: withState, want: shimState{SandboxID: "sb"}},
		{name: "derived from pod spec", bundle: withPodSpec, want: shimState{SandboxID: "pod"}},
		{name: "derived from id", bundle: t.TempDir(), want: shimState{SandboxID: "c1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cleanupState(tc.bundle, "c1", "/state")
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
