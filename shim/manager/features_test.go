package manager

import (
	"context"
	"slices"
	"testing"

	"github.com/containerd/typeurl/v2"
	"github.com/opencontainers/runtime-spec/specs-go/features"
)

func TestInfoFeatures(t *testing.T) {
	info, err := (&Manager{}).Info(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := typeurl.UnmarshalAny(info.Features)
	if err != nil {
		t.Fatalf("features do not decode (is the type registered?): %v", err)
	}
	f, ok := v.(*features.Features)
	if !ok {
		t.Fatalf("features are %T", v)
	}
	if !slices.Contains(f.MountOptions, "rro") {
		t.Fatalf("mount options %v lack rro", f.MountOptions)
	}
}
