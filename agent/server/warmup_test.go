package server

import (
	"context"
	"errors"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"

	"github.com/veil-runtime/veil/agent/api"
)

// warmNetwork is a Network that counts warm-ups.
type warmNetwork struct {
	warmed int
	err    error
}

func (n *warmNetwork) Setup(context.Context, *api.SetupNetworkRequest) error { return nil }
func (n *warmNetwork) WarmUp(context.Context) error                          { n.warmed++; return n.err }

func TestWarmUp(t *testing.T) {
	boom := errors.New("boom")
	cases := []struct {
		name       string
		sandbox    bool
		warmErr    error
		netErr     error
		want       error
		wantWarmed int
	}{
		{name: "before the sandbox", wantWarmed: 1},
		{name: "after CreateSandbox", sandbox: true, want: errdefs.ErrFailedPrecondition},
		{name: "container warm-up fails", warmErr: boom, want: errdefs.ErrUnknown, wantWarmed: 1},
		{name: "network warm-up fails", netErr: boom, want: errdefs.ErrUnknown, wantWarmed: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			s := NewService("v", &fakeContainers{}, &fakeGuest{})
			n := &warmNetwork{err: c.netErr}
			warmed := 0
			s.network = n
			s.warmUp = func(context.Context) error { warmed++; return c.warmErr }
			if c.sandbox {
				if _, err := s.CreateSandbox(ctx, &api.CreateSandboxRequest{SandboxId: "sb", Hostname: "h", SharedFsTag: "veil"}); err != nil {
					t.Fatal(err)
				}
			}
			_, err := s.WarmUp(ctx, &api.Empty{})
			if c.want == nil && err != nil || c.want != nil && !errors.Is(errgrpc.ToNative(err), c.want) {
				t.Fatalf("WarmUp: %v, want %v", err, c.want)
			}
			if warmed != c.wantWarmed || n.warmed != c.wantWarmed {
				t.Errorf("warmed containers %d, network %d; want %d", warmed, n.warmed, c.wantWarmed)
			}
		})
	}
}
