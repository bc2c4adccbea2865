package ch

import (
	"github.com/veil-runtime/veil/generated/models"
	"github.com/veil-runtime/veil/runtime/hypervisor"
)

// guestCID is the guest's vsock context id; every VM has its own hybrid
// vsock socket, so all guests can use the same one.
const guestCID = 3

// virtio-fs queue layout, as virtiofsd expects it.
const (
	fsNumQueues = 1
	fsQueueSize = 1024
)

// rngSource feeds the guest's virtio-rng.
const rngSource = "/dev/urandom"

// balloon is a balloon that never inflates, there for its free page
// reporting: the guest hands back pages it freed, so a sandbox's host
// memory shrinks after a container that used much of it exits.
func balloon() *models.BalloonConfig {
	return &models.BalloonConfig{Size: ptr(int64(0)), FreePageReporting: ptr(true)}
}

// sizing is the part of the VM's shape that is not in hypervisor.VMConfig.
type sizing struct {
	// maxVCPUs is the vCPU ceiling for hotplug; below the boot count it
	// means "no hotplug".
	maxVCPUs uint32
	// hotplugMiB is memory that can be hot-added above the boot size.
	hotplugMiB uint32
}

// buildVMConfig is the vm.create body for the VM whose paths, as the VMM
// sees them, are p. Guest memory is shared (vhost-user back-ends such as
// virtiofsd map it); the serial port is served on the console socket when
// the config has a sink, nowhere otherwise; the virtio console is off. A
// jailed VMM applies Landlock at vm.create. A balloon reports the guest's
// free pages.
func buildVMConfig(p vmmPaths, sz sizing) *models.VMConfig {
	cfg := p.cfg
	maxVCPUs := max(sz.maxVCPUs, cfg.VCPUs)
	mem := &models.MemoryConfig{
		Size:   ptr(int64(cfg.MemoryMiB) << 20),
		Shared: ptr(true),
	}
	if sz.hotplugMiB > 0 {
		mem.HotplugSize = int64(sz.hotplugMiB) << 20
	}
	vc := &models.VMConfig{
		Payload: &models.PayloadConfig{
			Kernel:    cfg.Kernel,
			Initramfs: cfg.Initrd,
			Cmdline:   cfg.Cmdline,
		},
		Cpus: &models.CpusConfig{
			BootVcpus: ptr(int64(cfg.VCPUs)),
			MaxVcpus:  ptr(int64(maxVCPUs)),
		},
		Memory: mem,
		Vsock: &models.VsockConfig{
			Cid:    ptr(int64(guestCID)),
			Socket: ptr(cfg.VsockSocket),
		},
		Serial:  &models.SerialConfig{Mode: ptr(models.ConsoleModeNull)},
		Console: &models.ConsoleConfig{Mode: ptr(models.ConsoleModeOff)},
		Rng:     &models.RngConfig{Src: ptr(rngSource)},
		Balloon: balloon(),
	}
	if cfg.Console != nil {
		// The shim drains it into its bounded copy (runtime/console).
		vc.Serial = &models.SerialConfig{Mode: ptr(models.ConsoleModeSocket), Socket: p.consoleSocket}
	}
	if cfg.Jail != nil {
		vc.LandlockEnable = ptr(true)
		for _, r := range landlockRules() {
			vc.LandlockRules = append(vc.LandlockRules, &models.LandlockConfig{Path: ptr(r[0]), Access: ptr(r[1])})
		}
	}
	for _, fs := range cfg.Filesystems {
		vc.Fs = append(vc.Fs, fsConfig(fs))
	}
	for _, nic := range cfg.NICs {
		vc.Net = append(vc.Net, netConfig(nic))
	}
	return vc
}

// netConfig is the CH device for a NIC: CH, running in the tap's
// namespace, opens the tap by name (a jailed CH as the tap's owner, see
// network.AttachOwned). Neither an address nor an MTU: the guest
// configures its addresses itself (through the agent), CH takes the
// tap's MTU, and setting either on the tap needs CAP_NET_ADMIN.
func netConfig(nic hypervisor.NIC) *models.NetConfig {
	return &models.NetConfig{Tap: nic.Tap, Mac: nic.MAC}
}

// fsConfig is the CH device for a virtio-fs share.
func fsConfig(fs hypervisor.Filesystem) *models.FsConfig {
	return &models.FsConfig{
		Tag:       ptr(fs.Tag),
		Socket:    ptr(fs.Socket),
		NumQueues: ptr(int64(fsNumQueues)),
		QueueSize: ptr(int64(fsQueueSize)),
	}
}

func ptr[T any](v T) *T { return &v }
