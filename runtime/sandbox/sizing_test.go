package sandbox

import (
	"context"
	"reflect"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/hypervisor"
)

func i64(v int64) *int64   { return &v }
func u64(v uint64) *uint64 { return &v }
func cpuRes(quota int64, period uint64) *specs.LinuxResources {
	return &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(quota), Period: u64(period)}}
}
func memRes(limit int64) *specs.LinuxResources {
	return &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(limit)}}
}

func TestWantedSize(t *testing.T) {
	for _, tc := range []struct {
		name     string
		res      *specs.LinuxResources
		wantCPUs uint32
		wantMiB  uint64
	}{
		{name: "no limits", res: &specs.LinuxResources{}},
		{name: "nil resources", res: nil},
		{name: "quota of three CPUs", res: cpuRes(300000, 100000), wantCPUs: 3},
		{name: "quota rounds up", res: cpuRes(150000, 100000), wantCPUs: 2},
		{name: "unlimited quota", res: cpuRes(-1, 100000)},
		{name: "quota without a period", res: &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(100000)}}},
		{name: "memory in MiB", res: memRes(1 << 30), wantMiB: 1024},
		{name: "memory rounds up", res: memRes(64<<20 + 1), wantMiB: 65},
		{name: "unlimited memory", res: memRes(-1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cpus, mib := wantedSize(tc.res)
			if cpus != tc.wantCPUs || mib != tc.wantMiB {
				t.Fatalf("wantedSize = %d vCPUs, %d MiB; want %d, %d", cpus, mib, tc.wantCPUs, tc.wantMiB)
			}
		})
	}
}

// failingVM answers every resize with err.
type failingVM struct {
	resizingVM
	err error
}

func (v *failingVM) Resize(ctx context.Context, r hypervisor.Resize) error {
	_ = v.resizingVM.Resize(ctx, r)
	return v.err
}

// TestFitResources: limits within the VM's boot size leave it alone;
// larger ones grow it; a hypervisor that cannot grow it leaves it with a
// warning; only a failed hotplug is an error.
func TestFitResources(t *testing.T) {
	cfg := config.Default()
	cfg.Guest.VCPUs, cfg.Guest.MemoryMiB = 1, 256
	cfg.Guest.MaxVCPUs, cfg.Guest.HotplugMemoryMiB = 4, 768
	for _, tc := range []struct {
		name      string
		res       *specs.LinuxResources
		resizeErr error
		fixed     bool // the VM cannot hotplug at all
		want      []hypervisor.Resize
		wantErr   bool
	}{
		{name: "within the VM: cgroup only", res: memRes(64 << 20)},
		{name: "more memory than the VM: grow first", res: memRes(1 << 30), want: []hypervisor.Resize{{VCPUs: 1, MemoryMiB: 1024}}},
		{name: "more CPU than the VM: grow first", res: cpuRes(300000, 100000), want: []hypervisor.Resize{{VCPUs: 3, MemoryMiB: 256}}},
		{name: "hypervisor cannot hotplug: cgroup only", res: cpuRes(300000, 100000), resizeErr: errdefs.ErrNotImplemented, want: []hypervisor.Resize{{VCPUs: 3, MemoryMiB: 256}}},
		{name: "hotplug fails: error", res: memRes(1 << 30), resizeErr: errdefs.ErrUnavailable, want: []hypervisor.Resize{{VCPUs: 1, MemoryMiB: 1024}}, wantErr: true},
		{name: "VM without hotplug: cgroup only", res: memRes(1 << 30), fixed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vm := &failingVM{err: tc.resizeErr}
			s := &Sandbox{id: "sb", cfg: cfg, vm: vm, vmm: config.HypervisorCloudHypervisor}
			if tc.fixed {
				s.vm = fixedVM{}
			}
			err := s.FitResources(context.Background(), tc.res)
			if (err != nil) != tc.wantErr {
				t.Fatalf("FitResources: %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr && !errdefs.IsUnavailable(err) {
				t.Fatalf("FitResources: %v does not wrap the hotplug's error", err)
			}
			if !reflect.DeepEqual(vm.asked, tc.want) {
				t.Fatalf("asked %+v, want %+v", vm.asked, tc.want)
			}
		})
	}
}
