package qemu

import (
	"fmt"
	"strings"

	"github.com/veil-runtime/veil/runtime/hypervisor"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// File names inside the sandbox directory.
const (
	qmpSocketName    = statedir.QMPSocket
	vhostVsockSocket = statedir.VhostVsockSocket
)

// vsockDeviceID is the QEMU id of the vsock device.
const vsockDeviceID = "vsock0"

// Accel is a QEMU accelerator.
type Accel string

const (
	AccelKVM Accel = "kvm"
	AccelTCG Accel = "tcg"
)

// sandboxOpts is QEMU's own seccomp filter: on, and denying obsolete
// system calls, privilege changes, spawning processes and resource
// control (Kata leaves it off; Veil turns it on with the jail).
const sandboxOpts = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"

// Paths of the guest images in a jailed QEMU's root.
const (
	jailKernel = "/vm/kernel"
	jailInitrd = "/vm/initrd"
)

// fds are the file descriptor numbers QEMU finds its endpoints at: every
// socket and tap is opened by the shim and passed, so QEMU opens no path
// but the guest images.
type fds struct {
	QMP, Console, Vsock int
	Filesystems, NICs   []int
}

// tcgTBSizeMiB bounds TCG's translation cache. QEMU's default (1 GiB on
// 64-bit hosts) fills as the guest runs new code (every runc init and exec
// does), and grows QEMU's anonymous memory past what the sandbox cgroup
// allows beside the guest's RAM (cgroups.memory_overhead_mib): the
// kernel then OOM-kills QEMU. A small guest's hot code fits in far less.
const tcgTBSizeMiB = 64

// buildArgs returns QEMU's arguments for cfg. jailed selects the images'
// paths inside the jail and turns on QEMU's seccomp filter.
func buildArgs(cfg hypervisor.VMConfig, accel Accel, maxVCPUs uint32, fd fds, jailed bool) []string {
	cmdline := cfg.Cmdline
	smp := max(maxVCPUs, cfg.VCPUs)
	if smp > cfg.VCPUs {
		cmdline = strings.TrimSpace(fmt.Sprintf("%s maxcpus=%d", cmdline, cfg.VCPUs))
	}
	kernel, initrd := cfg.Kernel, cfg.Initrd
	if jailed {
		kernel, initrd = jailKernel, jailInitrd
	}
	accelOpt := string(accel)
	if accel == AccelTCG {
		accelOpt += fmt.Sprintf(",tb-size=%d", tcgTBSizeMiB)
	}
	args := []string{
		"-name", "veil-" + cfg.ID,
		"-M", "microvm,x-option-roms=off",
		"-accel", accelOpt,
	}
	if accel == AccelKVM {
		args = append(args, "-cpu", "host")
	}
	if jailed {
		args = append(args, "-sandbox", sandboxOpts)
	}
	args = append(args,
		"-smp", fmt.Sprint(smp),
		"-m", fmt.Sprintf("%dM", cfg.MemoryMiB),
		"-object", fmt.Sprintf("memory-backend-memfd,id=mem,size=%dM,share=on", cfg.MemoryMiB),
		"-numa", "node,memdev=mem",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-chardev", fmt.Sprintf("socket,id=console,fd=%d", fd.Console),
		"-serial", "chardev:console",
		"-kernel", kernel,
		"-initrd", initrd,
		"-append", cmdline,
		"-chardev", fmt.Sprintf("socket,id=qmp,fd=%d,server=on,wait=off", fd.QMP),
		"-mon", "chardev=qmp,mode=control",
		"-chardev", fmt.Sprintf("socket,id=vsock,fd=%d", fd.Vsock),
		"-device", "vhost-user-vsock-device,chardev=vsock,id="+vsockDeviceID,
		// A balloon that never inflates, for its free page reporting: the
		// guest hands pages it freed back (QEMU punches them out of the
		// memfd), so a sandbox's host memory shrinks after a container
		// that used much of it exits.
		"-device", "virtio-balloon-device,free-page-reporting=on",
	)
	for i, fs := range cfg.Filesystems {
		id := fmt.Sprintf("fs%d", i)
		args = append(args,
			"-chardev", fmt.Sprintf("socket,id=%s,fd=%d", id, fd.Filesystems[i]),
			"-device", fmt.Sprintf("vhost-user-fs-device,chardev=%s,tag=%s", id, opt(fs.Tag)),
		)
	}
	for i, nic := range cfg.NICs {
		id := fmt.Sprintf("net%d", i)
		args = append(args,
			"-netdev", fmt.Sprintf("tap,id=%s,fd=%d", id, fd.NICs[i]),
			"-device", fmt.Sprintf("virtio-net-device,netdev=%s,mac=%s", id, opt(nic.MAC)),
		)
	}
	return args
}

func opt(v string) string { return strings.ReplaceAll(v, ",", ",,") }
