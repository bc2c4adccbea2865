package qemu

import (
	"fmt"
	"path/filepath"
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

// buildArgs returns QEMU's arguments (without argv[0]) for cfg, with
// maxVCPUs vCPUs of which the guest onlines cfg.VCPUs at boot.
func buildArgs(cfg hypervisor.VMConfig, accel Accel, maxVCPUs uint32) []string {
	cmdline := cfg.Cmdline
	smp := max(maxVCPUs, cfg.VCPUs)
	if smp > cfg.VCPUs {
		cmdline = strings.TrimSpace(fmt.Sprintf("%s maxcpus=%d", cmdline, cfg.VCPUs))
	}
	args := []string{
		"-name", "veil-" + cfg.ID,
		"-M", "microvm,x-option-roms=off",
		"-accel", string(accel),
	}
	if accel == AccelKVM {
		args = append(args, "-cpu", "host")
	}
	args = append(args,
		"-smp", fmt.Sprint(smp),
		"-m", fmt.Sprintf("%dM", cfg.MemoryMiB),
		// vhost-user back-ends map guest memory: it must be a shared fd.
		"-object", fmt.Sprintf("memory-backend-memfd,id=mem,size=%dM,share=on", cfg.MemoryMiB),
		"-numa", "node,memdev=mem",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-serial", "file:"+cfg.ConsoleLog,
		"-kernel", cfg.Kernel,
		"-initrd", cfg.Initrd,
		"-append", cmdline,
		"-qmp", "unix:"+opt(filepath.Join(cfg.Dir, qmpSocketName))+",server=on,wait=off",
		"-chardev", "socket,id=vsock,path="+opt(filepath.Join(cfg.Dir, vhostVsockSocket)),
		"-device", "vhost-user-vsock-device,chardev=vsock,id="+vsockDeviceID,
	)
	for i, fs := range cfg.Filesystems {
		id := fmt.Sprintf("fs%d", i)
		args = append(args,
			"-chardev", fmt.Sprintf("socket,id=%s,path=%s", id, opt(fs.Socket)),
			"-device", fmt.Sprintf("vhost-user-fs-device,chardev=%s,tag=%s", id, opt(fs.Tag)),
		)
	}
	for i, nic := range cfg.NICs {
		id := fmt.Sprintf("net%d", i)
		args = append(args,
			// QEMU runs in the tap's namespace and opens it by name; the
			// runtime owns the tap, so no scripts.
			"-netdev", fmt.Sprintf("tap,id=%s,ifname=%s,script=no,downscript=no", id, opt(nic.Tap)),
			"-device", fmt.Sprintf("virtio-net-device,netdev=%s,mac=%s", id, opt(nic.MAC)),
		)
	}
	return args
}

// opt escapes a value for a QEMU option list, where "," separates options.
func opt(v string) string { return strings.ReplaceAll(v, ",", ",,") }
