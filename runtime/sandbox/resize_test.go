package sandbox

import (
	"context"
	"reflect"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/hypervisor"
)

// resizingVM records the sizes it was asked for.
type resizingVM struct {
	hypervisor.VM
	asked []hypervisor.Resize
}

func (v *resizingVM) Resize(_ context.Context, r hypervisor.Resize) error {
	v.asked = append(v.asked, r)
	return nil
}

// cpuOnlyVM can add vCPUs but not memory, as QEMU's microvm.
type cpuOnlyVM struct {
	resizingVM
	boot uint32
}

func (v *cpuOnlyVM) Resize(ctx context.Context, r hypervisor.Resize) error {
	if r.MemoryMiB > v.boot {
		return errdefs.ErrNotImplemented
	}
	return v.resizingVM.Resize(ctx, r)
}

// fixedVM cannot hotplug.
type fixedVM struct{ hypervisor.VM }

func TestResize(t *testing.T) {
	cfg := config.Default()
	cfg.Guest.VCPUs, cfg.Guest.MemoryMiB = 1, 256
	cfg.Guest.MaxVCPUs, cfg.Guest.HotplugMemoryMiB = 4, 768
	for _, tc := range []struct {
		name  string
		calls [][2]uint64 // vcpus, MiB
		want  []hypervisor.Resize
	}{
		{name: "within boot size: nothing", calls: [][2]uint64{{1, 128}}},
		{name: "grow cpus", calls: [][2]uint64{{2, 0}}, want: []hypervisor.Resize{{VCPUs: 2, MemoryMiB: 256}}},
		{name: "grow memory, then never shrink", calls: [][2]uint64{{0, 512}, {0, 300}}, want: []hypervisor.Resize{{VCPUs: 1, MemoryMiB: 512}}},
		{name: "clamped to the maximum", calls: [][2]uint64{{16, 4096}}, want: []hypervisor.Resize{{VCPUs: 4, MemoryMiB: 1024}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vm := &resizingVM{}
			s := &Sandbox{id: "sb", cfg: cfg, vm: vm, vmm: config.HypervisorCloudHypervisor}
			for _, c := range tc.calls {
				if err := s.Resize(context.Background(), uint32(c[0]), c[1]); err != nil {
					t.Fatal(err)
				}
			}
			if !reflect.DeepEqual(vm.asked, tc.want) {
				t.Fatalf("asked %+v, want %+v", vm.asked, tc.want)
			}
		})
	}
	t.Run("memory cannot grow: vCPUs only", func(t *testing.T) {
		vm := &cpuOnlyVM{boot: 256}
		s := &Sandbox{id: "sb", cfg: cfg, vm: vm, vmm: config.HypervisorQEMU}
		if err := s.Resize(context.Background(), 2, 512); err != nil {
			t.Fatal(err)
		}
		if want := []hypervisor.Resize{{VCPUs: 2, MemoryMiB: 256}}; !reflect.DeepEqual(vm.asked, want) {
			t.Fatalf("asked %+v, want %+v", vm.asked, want)
		}
	})
	t.Run("hypervisor without hotplug", func(t *testing.T) {
		s := &Sandbox{id: "sb", cfg: cfg, vm: fixedVM{}, vmm: config.HypervisorQEMU}
		if err := s.Resize(context.Background(), 2, 0); !errdefs.IsNotImplemented(err) {
			t.Fatalf("Resize on qemu: %v, want NotImplemented", err)
		}
	})
}
