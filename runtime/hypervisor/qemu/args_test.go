package qemu

import (
	"slices"
	"strings"
	"testing"

	"github.com/veil-runtime/veil/runtime/hypervisor"
)

func TestBuildArgs(t *testing.T) {
	base := hypervisor.VMConfig{
		ID: "sb1", Dir: "/run/veil/sandboxes/sb1",
		Kernel: "/k/vmlinux", Initrd: "/k/initrd", Cmdline: "console=ttyS0 quiet",
		VCPUs: 2, MemoryMiB: 256,
		VsockSocket: "/run/veil/sandboxes/sb1/vsock.sock",
	}
	withFS := base
	withFS.Filesystems = []hypervisor.Filesystem{{Tag: "veil", Socket: "/run/veil/sandboxes/sb1/virtiofsd.sock"}, {Tag: "b,c", Socket: "/x,y.sock"}}

	withNICs := base
	withNICs.NetNSPath = "/run/netns/cni-1"
	withNICs.NICs = []hypervisor.NIC{{Tap: "tap0_veil", MAC: "02:00:0a:00:00:02"}, {Tap: "tap1_veil", MAC: "02:00:0a:00:01:02"}}

	cases := []struct {
		name     string
		cfg      hypervisor.VMConfig
		accel    Accel
		maxVCPUs uint32
		jailed   bool
		want     [][]string // flag/value pairs that must appear in this order
		notWant  []string
	}{
		{
			name:  "tcg without filesystems",
			cfg:   base,
			accel: AccelTCG,
			want: [][]string{
				{"-M", "microvm,x-option-roms=off"},
				{"-accel", "tcg,tb-size=64"},
				{"-smp", "2"},
				{"-m", "256M"},
				{"-object", "memory-backend-memfd,id=mem,size=256M,share=on"},
				{"-numa", "node,memdev=mem"},
				{"-chardev", "socket,id=console,fd=4"},
				{"-serial", "chardev:console"},
				{"-kernel", "/k/vmlinux"},
				{"-initrd", "/k/initrd"},
				{"-append", "console=ttyS0 quiet"},
				{"-chardev", "socket,id=qmp,fd=3,server=on,wait=off"},
				{"-mon", "chardev=qmp,mode=control"},
				{"-chardev", "socket,id=vsock,fd=5"},
				{"-device", "vhost-user-vsock-device,chardev=vsock,id=vsock0"},
				{"-device", "virtio-balloon-device,free-page-reporting=on"},
			},
			notWant: []string{"-cpu", "vhost-user-fs-device", "-netdev", "virtio-net-device", "-sandbox", "path=", "file:", "/run/veil"},
		},
		{
			name:   "jailed: seccomp on, images at their jail paths",
			cfg:    base,
			accel:  AccelTCG,
			jailed: true,
			want: [][]string{
				{"-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"},
				{"-kernel", "/vm/kernel"},
				{"-initrd", "/vm/initrd"},
			},
			notWant: []string{"/k/vmlinux", "/k/initrd"},
		},
		{
			name:  "NICs on taps with the pod's MACs",
			cfg:   withNICs,
			accel: AccelTCG,
			want: [][]string{
				{"-netdev", "tap,id=net0,fd=6"},
				{"-device", "virtio-net-device,netdev=net0,mac=02:00:0a:00:00:02"},
				{"-netdev", "tap,id=net1,fd=7"},
				{"-device", "virtio-net-device,netdev=net1,mac=02:00:0a:00:01:02"},
			},
		},
		{
			name:     "spare vCPUs for hotplug come up offline",
			cfg:      base,
			accel:    AccelTCG,
			maxVCPUs: 4,
			want:     [][]string{{"-smp", "4"}, {"-append", "console=ttyS0 quiet maxcpus=2"}},
		},
		{
			name:     "a maximum below the boot count is ignored",
			cfg:      base,
			accel:    AccelTCG,
			maxVCPUs: 1,
			want:     [][]string{{"-smp", "2"}, {"-append", "console=ttyS0 quiet"}},
		},
		{
			name:  "kvm uses host cpu",
			cfg:   base,
			accel: AccelKVM,
			want:  [][]string{{"-accel", "kvm"}, {"-cpu", "host"}},
		},
		{
			name:  "filesystems with escaped commas",
			cfg:   withFS,
			accel: AccelTCG,
			want: [][]string{
				{"-chardev", "socket,id=fs0,fd=6"},
				{"-device", "vhost-user-fs-device,chardev=fs0,tag=veil"},
				{"-chardev", "socket,id=fs1,fd=7"},
				{"-device", "vhost-user-fs-device,chardev=fs1,tag=b,,c"},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fd := fds{QMP: 3, Console: 4, Vsock: 5}
			for range tc.cfg.Filesystems {
				fd.Filesystems = append(fd.Filesystems, 6+len(fd.Filesystems))
			}
			for range tc.cfg.NICs {
				fd.NICs = append(fd.NICs, 6+len(fd.Filesystems)+len(fd.NICs))
			}
			args := buildArgs(tc.cfg, tc.accel, tc.maxVCPUs, fd, tc.jailed)
			for _, flag := range []string{"-nodefaults", "-no-user-config", "-no-reboot"} {
				if !slices.Contains(args, flag) {
					t.Errorf("missing %s in %v", flag, args)
				}
			}
			from := 0
			for _, pair := range tc.want {
				i := indexPair(args[from:], pair[0], pair[1])
				if i < 0 {
					t.Fatalf("missing %s %s (in order) in:\n%s", pair[0], pair[1], strings.Join(args, " "))
				}
				from += i + 2
			}
			for _, s := range tc.notWant {
				for _, a := range args {
					if strings.Contains(a, s) {
						t.Errorf("unexpected %q in %q", s, a)
					}
				}
			}
		})
	}
}

func indexPair(args []string, flag, val string) int {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag && args[i+1] == val {
			return i
		}
	}
	return -1
}

func TestChooseAccel(t *testing.T) {
	cases := []struct {
		name     string
		cpuinfo  string
		kvmOpens bool
		want     Accel
	}{
		{name: "vmx and kvm", cpuinfo: "flags\t\t: fpu vme vmx sse\n", kvmOpens: true, want: AccelKVM},
		{name: "svm and kvm", cpuinfo: "flags : fpu svm\n", kvmOpens: true, want: AccelKVM},
		{name: "pvm: kvm without cpu flag", cpuinfo: "flags : fpu sse hypervisor\n", kvmOpens: true, want: AccelTCG},
		{name: "flag without kvm device", cpuinfo: "flags : vmx\n", kvmOpens: false, want: AccelTCG},
		{name: "vmx only as substring", cpuinfo: "flags : fpu vmxfoo\n", kvmOpens: true, want: AccelTCG},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := chooseAccel([]byte(tc.cpuinfo), tc.kvmOpens); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}
