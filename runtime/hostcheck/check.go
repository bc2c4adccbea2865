package hostcheck

import (
	"bytes"
	"context"
	"fmt"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/hypervisor/registry"
)

// Status is a check's verdict.
type Status string

const (
	// OK: the check passed.
	OK Status = "OK"
	// Warn: Veil works, but slower or with a feature missing.
	Warn Status = "WARN"
	// Fail: sandboxes cannot start until this is fixed.
	Fail Status = "FAIL"
	// Skip: the check could not be made here (not root, a fake root);
	// Detail says why.
	Skip Status = "SKIP"
)

// Result is the outcome of one check.
type Result struct {
	// Name names the check (e.g. "virtualization").
	Name string `json:"name"`
	// Status is the verdict.
	Status Status `json:"status"`
	// Detail says what was found.
	Detail string `json:"detail"`
	// Fix says how to fix a failing or warning check.
	Fix string `json:"fix,omitempty"`
}

// Report is the outcome of every check.
type Report struct {
	// Ready reports that no check failed: VMs can run.
	Ready bool `json:"ready"`
	// Hypervisor is the hypervisor sandboxes would use.
	Hypervisor string `json:"hypervisor"`
	// Accel is how QEMU would run guests: "kvm" or "tcg".
	Accel   string   `json:"accel"`
	Results []Result `json:"checks"`
}

// DefaultContainerdConfig is containerd's configuration file.
const DefaultContainerdConfig = "/etc/containerd/config.toml"

// RuntimeType is the containerd runtime type that runs Veil's shim.
const RuntimeType = "io.containerd.veil.v2"

// Options tune Run.
type Options struct {
	// ContainerdConfig is containerd's config file; empty means
	// DefaultContainerdConfig.
	ContainerdConfig string
}

// Run checks host h against cfg. ctx bounds the probes that start
// processes (the jail, QEMU's -sandbox).
func Run(ctx context.Context, cfg *config.Config, h Host, opts Options) Report {
	virt := probeVirt(h)
	hvName, hvReason := cfg.Hypervisor.Select(hostFacts(cfg, h, virt))
	r := Report{Hypervisor: hvName, Accel: "tcg"}
	if virt.hardware && virt.kvmErr == nil {
		r.Accel = "kvm"
	}
	add := func(res Result) { r.Results = append(r.Results, res) }

	add(virt.result())
	add(Result{Name: "hypervisor", Status: OK, Detail: fmt.Sprintf("%s (%s)", hvName, hvReason)})
	for _, e := range registry.All() {
		add(checkVMM(cfg, h, hvName, e))
	}
	inUse, _ := registry.Lookup(hvName) // Select gives a registry name
	add(checkVsock(cfg, h, inUse))
	add(checkBinary(h, "virtiofsd", cfg.Virtiofs.Path, "virtiofsd", Fail,
		"install virtiofsd (Debian: apt-get install virtiofsd, or `make setup`) and set virtiofs.path"))
	add(checkFile(h, "guest kernel", cfg.Guest.Kernel, "guest.kernel", "build it with `make setup` (an uncompressed PVH vmlinux)"))
	add(checkFile(h, "guest initramfs", cfg.Guest.Initrd, "guest.initrd", "build it with `make guest`"))
	add(checkTun(cfg, h, inUse))
	add(checkCgroups(h))
	add(checkCgroupControllers(cfg, h))
	add(checkUIDRange(cfg, h))
	add(checkJail(ctx, cfg, h))
	add(checkSeccomp(ctx, cfg, h, hvName))
	add(checkKVMGroup(cfg, h, kvmUsed(r, inUse)))
	add(checkContainerd(h, opts.ContainerdConfig))

	r.Ready = true
	for _, res := range r.Results {
		if res.Status == Fail {
			r.Ready = false
		}
	}
	return r
}

// virtFacts is what the host offers for hardware virtualization.
type virtFacts struct {
	hardware bool  // vmx or svm in /proc/cpuinfo
	kvm      bool  // /dev/kvm exists
	kvmErr   error // why /dev/kvm does not open (nil when it does)
}

func probeVirt(h Host) virtFacts {
	cpuinfo, _ := h.ReadFile("/proc/cpuinfo")
	v := virtFacts{hardware: config.HasCPUVirt(cpuinfo), kvm: h.Exists("/dev/kvm")}
	v.kvmErr = h.OpenRW("/dev/kvm")
	return v
}

func (v virtFacts) result() Result {
	res := Result{Name: "virtualization"}
	switch {
	case v.hardware && v.kvmErr == nil:
		res.Status, res.Detail = OK, "hardware KVM: CPU has vmx/svm and /dev/kvm opens"
	case v.hardware && v.kvm:
		res.Status = Warn
		res.Detail = fmt.Sprintf("CPU has vmx/svm but /dev/kvm does not open (%v): VMs will run under QEMU TCG emulation, several times slower", v.kvmErr)
		res.Fix = "run as root or add the user to the kvm group"
	case v.hardware:
		res.Status = Warn
		res.Detail = "CPU has vmx/svm but there is no /dev/kvm: VMs will run under QEMU TCG emulation, several times slower"
		res.Fix = "modprobe kvm_intel (or kvm_amd); enable virtualization in the firmware"
	case v.kvm:
		res.Status = Warn
		res.Detail = "/dev/kvm exists but the CPU has no vmx/svm flag: a software KVM (such as PVM) that stock guest kernels cannot run under; " +
			"VMs will run under QEMU TCG emulation (about 1.5 s boot instead of ~0.2 s) and Cloud Hypervisor cannot be used"
		res.Fix = "for KVM speed, run on bare metal or a VM with nested virtualization (vmx/svm exposed)"
	default:
		res.Status = Warn
		res.Detail = "no hardware virtualization (no vmx/svm, no /dev/kvm): VMs will run under QEMU TCG emulation, several times slower"
		res.Fix = "enable VT-x/AMD-V (or nested virtualization) and load kvm_intel/kvm_amd"
	}
	return res
}

// hostFacts is config.HostFacts gathered through h.
func hostFacts(cfg *config.Config, h Host, v virtFacts) config.HostFacts {
	f := config.HostFacts{CPUVirt: v.hardware, KVM: v.kvm}
	f.CloudHypervisor, f.CloudHypervisorErr = findVMM(cfg, h, config.HypervisorCloudHypervisor)
	if f.CloudHypervisorErr != nil {
		f.CloudHypervisor = ""
	}
	return f
}

// checkVMM checks the binary of hypervisor e; it fails only when e is
// the hypervisor in use.
func checkVMM(cfg *config.Config, h Host, inUse string, e registry.Entry) Result {
	sev := Warn
	if inUse == e.Name {
		sev = Fail
	}
	return checkBinary(h, e.Name, e.Path(cfg.Hypervisor), e.Binary, sev, e.Install)
}

// findVMM finds the binary of hypervisor name (its configured path, or
// its default binary on PATH), for the checks specific to it.
func findVMM(cfg *config.Config, h Host, name string) (string, error) {
	e, ok := registry.Lookup(name)
	if !ok {
		return "", fmt.Errorf("hypervisor %s is not in runtime/hypervisor/registry", name)
	}
	return h.FindBinary(e.Path(cfg.Hypervisor), e.Binary)
}

// checkVsock checks the hybrid vsock the hypervisor in use needs: QEMU
// gets it from vhost-device-vsock (registry.Entry.VhostVsock); Cloud
// Hypervisor has it built in. /dev/vhost-vsock (kernel vsock) is not
// needed for hybrid vsock.
func checkVsock(cfg *config.Config, h Host, inUse registry.Entry) Result {
	kernel := "absent (not needed for hybrid vsock)"
	if h.Exists("/dev/vhost-vsock") {
		kernel = "present (not used: hybrid vsock)"
	}
	if !inUse.VhostVsock {
		return Result{Name: "vsock", Status: OK, Detail: inUse.Title + "'s built-in hybrid vsock; /dev/vhost-vsock " + kernel}
	}
	res := checkBinary(h, "vsock", cfg.Hypervisor.VhostVsockPath, "vhost-device-vsock", Fail,
		"install vhost-device-vsock (Debian sid package, or `make setup`) and set hypervisor.vhost_vsock_path")
	if res.Status == OK {
		res.Detail = "vhost-device-vsock " + res.Detail + " gives " + inUse.Title + " hybrid vsock; /dev/vhost-vsock " + kernel
	}
	return res
}

func checkBinary(h Host, name, configured, binary string, sev Status, fix string) Result {
	p, err := h.FindBinary(configured, binary)
	if err != nil {
		return Result{Name: name, Status: sev, Detail: err.Error(), Fix: fix}
	}
	return Result{Name: name, Status: OK, Detail: p}
}

func checkFile(h Host, name, path, key, fix string) Result {
	if path == "" {
		return Result{Name: name, Status: Fail, Detail: key + " is not set", Fix: "set " + key + " in the Veil config; " + fix}
	}
	if !h.Exists(path) {
		return Result{Name: name, Status: Fail, Detail: fmt.Sprintf("%s (%s) does not exist", path, key), Fix: fix + ", or point " + key + " at it"}
	}
	return Result{Name: name, Status: OK, Detail: path}
}

func checkTun(cfg *config.Config, h Host, inUse registry.Entry) Result {
	if err := h.OpenRW("/dev/net/tun"); err != nil {
		return Result{Name: "tun", Status: Warn, Detail: fmt.Sprintf("/dev/net/tun: %v: pod networking (tap devices) will not work", err),
			Fix: "modprobe tun; mknod /dev/net/tun c 10 200"}
	}
	// A jailed VMM that opens its taps itself (Cloud Hypervisor) does so
	// as the sandbox's unprivileged uid (QEMU gets them from the shim).
	if cfg.Jail.Enabled && inUse.OpensEndpoints {
		if fi, err := h.Stat("/dev/net/tun"); err == nil && fi.Mode().Perm()&0o006 != 0o006 {
			return Result{Name: "tun", Status: Fail,
				Detail: fmt.Sprintf("/dev/net/tun is mode %04o: the jailed %s (an unprivileged uid) cannot open its taps", fi.Mode().Perm(), inUse.Title),
				Fix:    "chmod 0666 /dev/net/tun (the usual mode: opening it grants nothing by itself), or set jail.enabled = false (not recommended)"}
		}
	}
	return Result{Name: "tun", Status: OK, Detail: "/dev/net/tun opens"}
}

// checkCgroups reports the host's cgroup layout: v2 (unified), hybrid (v1
// with a v2 mount at unified/) or v1.
func checkCgroups(h Host) Result {
	res := Result{Name: "cgroups", Status: OK}
	switch {
	case h.Exists("/sys/fs/cgroup/cgroup.controllers"):
		res.Detail = "v2 (unified)"
	case h.Exists("/sys/fs/cgroup/unified/cgroup.controllers"):
		res.Detail = "hybrid (v1 controllers, v2 at /sys/fs/cgroup/unified); containerd warns that v1 is deprecated"
	case h.Exists("/sys/fs/cgroup/memory") || h.Exists("/sys/fs/cgroup/cpu"):
		res.Detail = "v1; containerd warns that v1 is deprecated"
	default:
		res.Status, res.Detail = Warn, "no cgroup hierarchy under /sys/fs/cgroup: the shim cannot account its processes"
		res.Fix = "mount cgroup2 on /sys/fs/cgroup"
	}
	return res
}

// ContainerdSnippet is what containerd's config needs for Veil's runtime.
const ContainerdSnippet = `[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.veil]
  runtime_type = "` + RuntimeType + `"`

func checkContainerd(h Host, path string) Result {
	if path == "" {
		path = DefaultContainerdConfig
	}
	res := Result{Name: "containerd runtime"}
	b, err := h.ReadFile(path)
	switch {
	case err != nil:
		res.Status, res.Detail = Warn, fmt.Sprintf("cannot read %s: %v", path, err)
		res.Fix = "add to containerd's config (and put containerd-shim-veil-v2 on containerd's PATH):\n" + ContainerdSnippet
	case !bytes.Contains(b, []byte(RuntimeType)):
		res.Status, res.Detail = Warn, fmt.Sprintf("%s names no %s runtime (ctr --runtime %s still works)", path, RuntimeType, RuntimeType)
		res.Fix = "add to " + path + " and restart containerd:\n" + ContainerdSnippet
	default:
		res.Status, res.Detail = OK, fmt.Sprintf("%s names %s", path, RuntimeType)
	}
	return res
}
