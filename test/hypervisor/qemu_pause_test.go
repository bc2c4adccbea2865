package hypervisor

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/veil-runtime/veil/runtime/hypervisor"
	"github.com/veil-runtime/veil/runtime/hypervisor/qemu"
	"github.com/veil-runtime/veil/runtime/statedir"
	"github.com/veil-runtime/veil/test/harness"
)

// TestPauseResume boots a QEMU VM from the configured kernel and initrd
// (no jail, no cgroup, no devices: the guest need not reach its agent)
// and drives it through Pause and Resume, reading QEMU's run state over
// QMP after each step. The guest panics without its share; panic=0 keeps
// the VM running (halted) instead of letting QEMU exit.
func TestQEMUPauseResume(t *testing.T) {
	cfg := harness.SandboxConfig(t)
	d, err := statedir.New(cfg.StateDir, "pause")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(d.Path(), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d.Path()) })
	if _, err := statedir.CreateHelperDir(d, 0, 0); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	drv := &qemu.Driver{QEMUPath: cfg.Hypervisor.QEMUPath, VhostVsockPath: cfg.Hypervisor.VhostVsockPath, StopTimeout: time.Second}
	v, err := drv.Start(ctx, hypervisor.VMConfig{
		ID: "pause", Dir: d.Path(),
		Kernel: cfg.Guest.Kernel, Initrd: cfg.Guest.Initrd, Cmdline: "console=ttyS0 quiet panic=0",
		VCPUs: 1, MemoryMiB: cfg.Guest.MemoryMiB,
		VsockSocket: d.File(statedir.VsockSocket),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer scancel()
		if err := v.Stop(sctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	p, ok := v.(hypervisor.Pauser)
	if !ok {
		t.Fatalf("%T is no hypervisor.Pauser", v)
	}
	remote := qemu.Connect(d.Path())

	steps := []struct {
		name string
		do   func(context.Context) error
		// wantPrecondition: the step is refused with ErrFailedPrecondition.
		wantPrecondition bool
		wantState        string
	}{
		{name: "boots running", do: func(context.Context) error { return nil }, wantState: "running"},
		{name: "resume of a running VM", do: p.Resume, wantPrecondition: true, wantState: "running"},
		{name: "pause", do: p.Pause, wantState: "paused"},
		{name: "pause of a paused VM", do: p.Pause, wantPrecondition: true, wantState: "paused"},
		{name: "resume", do: p.Resume, wantState: "running"},
		{name: "pause again", do: p.Pause, wantState: "paused"},
		{name: "resume again", do: p.Resume, wantState: "running"},
	}
	for _, s := range steps {
		err := s.do(ctx)
		switch {
		case s.wantPrecondition && !errdefs.IsFailedPrecondition(err):
			t.Fatalf("%s: %v, want FailedPrecondition", s.name, err)
		case !s.wantPrecondition && err != nil:
			t.Fatalf("%s: %v", s.name, err)
		}
		info, err := remote.Info(ctx)
		if err != nil {
			t.Fatalf("%s: query-status: %v", s.name, err)
		}
		if info.State != s.wantState {
			t.Fatalf("%s: query-status says %q, want %q (%s)", s.name, info.State, s.wantState, info.Raw)
		}
	}
}
