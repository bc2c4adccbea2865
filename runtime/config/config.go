package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

const (
	// DefaultPath is where Veil looks for its configuration file.
	DefaultPath = "/etc/veil/config.toml"
	// EnvPath names an environment variable that overrides DefaultPath.
	EnvPath = "VEIL_CONFIG"
)

// Config is Veil's configuration. Empty binary paths are looked up on PATH
// when used.
type Config struct {
	// StateDir holds one directory per sandbox.
	StateDir string `toml:"state_dir"`
	// LogLevel is the shim's log level (debug, info, warn, error).
	LogLevel string `toml:"log_level"`

	Hypervisor Hypervisor `toml:"hypervisor"`
	Guest      Guest      `toml:"guest"`
	Virtiofs   Virtiofs   `toml:"virtiofs"`
	Timeouts   Timeouts   `toml:"timeouts"`
	Volumes    Volumes    `toml:"volumes"`
	Jail       Jail       `toml:"jail"`
	Cgroups    Cgroups    `toml:"cgroups"`
	Console    Console    `toml:"console"`
	Pool       Pool       `toml:"pool"`
	Monitor    Monitor    `toml:"monitor"`
}

// Jail confines the host helpers of each sandbox (the VMM and
// vhost-device-vsock): each sandbox gets its own unprivileged uid/gid
// from [UIDBase, UIDBase+UIDCount), its own mount, PID, IPC, UTS and
// network namespaces with a root holding only what the helper needs,
// no_new_privs, and rlimits. virtiofsd keeps its own namespace sandbox
// and seccomp filter and gets the rlimits too.
type Jail struct {
	// Enabled turns the jail on (the default).
	Enabled bool `toml:"enabled"`
	// UIDBase and UIDCount are the range of host uids (and gids) given to
	// sandboxes, one per running sandbox; no user of the host may own
	// one.
	UIDBase  uint32 `toml:"uid_base"`
	UIDCount uint32 `toml:"uid_count"`
	// RlimitNofile bounds the open files of each helper.
	RlimitNofile uint64 `toml:"rlimit_nofile"`
	// RlimitFsizeMiB bounds the size of any file a helper writes (its
	// log).
	RlimitFsizeMiB uint64 `toml:"rlimit_fsize_mib"`
}

// Cgroups places every helper of a sandbox in one cgroup: below the
// sandbox container's cgroupsPath under CRI (so the pod's cgroup holds
// the VM), below Parent otherwise.
type Cgroups struct {
	// Enabled turns the sandbox cgroup on (the default).
	Enabled bool `toml:"enabled"`
	// Parent holds the cgroups of sandboxes started without CRI.
	Parent string `toml:"parent"`
	// MemoryOverheadMiB is added to the guest's RAM to make the
	// sandbox cgroup's memory limit (the VMM, virtiofsd and
	// vhost-device-vsock's own memory).
	MemoryOverheadMiB uint32 `toml:"memory_overhead_mib"`
	// PidsLimit bounds the tasks (threads) of the sandbox's helpers.
	PidsLimit int64 `toml:"pids_limit"`
}

// Console bounds the host's copy of the guest's serial console.
type Console struct {
	// MaxBytes is how much of the console the host keeps (console.log
	// and its one rotated predecessor together).
	MaxBytes int64 `toml:"max_bytes"`
}

// Volumes says which host paths containers may bind-mount; the guest sees
// them through virtio-fs.
type Volumes struct {
	// AllowedHostPaths lists the host directories under which a bind
	// mount's source may lie (after symlinks are resolved). A pod's own
	// files that containerd's CRI plugin prepares (hosts, resolv.conf,
	// hostname, shm, image volumes) are always allowed; DeniedHostPaths
	// and Veil's state directory never are.
	AllowedHostPaths []string `toml:"allowed_host_paths"`
}

// DefaultUIDBase is the first uid of the default jail range: far above
// the ids of users (and of Kubernetes' user namespaces, 65536..2^31).
const DefaultUIDBase = 3_000_000_000

// DeniedHostPaths are never shared into a guest, whatever
// volumes.allowed_host_paths says.
var DeniedHostPaths = []string{"/proc", "/sys", "/dev", "/boot"}

// Hypervisor selects the VMM and its helper binaries.
type Hypervisor struct {
	// Name is "qemu", "cloud-hypervisor", or "auto" (or empty): Cloud
	// Hypervisor when the host can run it, else QEMU; see Select.
	Name string `toml:"name"`
	// QEMUPath is the qemu-system-x86_64 binary.
	QEMUPath string `toml:"qemu_path"`
	// CloudHypervisorPath is the cloud-hypervisor binary.
	CloudHypervisorPath string `toml:"cloud_hypervisor_path"`
	// VhostVsockPath is the vhost-device-vsock binary QEMU uses for hybrid vsock.
	VhostVsockPath string `toml:"vhost_vsock_path"`
}

// Guest describes the VM given to each sandbox.
type Guest struct {
	// Kernel is an uncompressed PVH vmlinux.
	Kernel string `toml:"kernel"`
	// Initrd is the initramfs holding veil-agent as /init.
	Initrd string `toml:"initrd"`
	// VCPUs and MemoryMiB size the VM at boot.
	VCPUs     uint32 `toml:"vcpus"`
	MemoryMiB uint32 `toml:"memory_mib"`
	// MaxVCPUs and HotplugMemoryMiB bound how far a running VM may grow
	// by hotplug when a container's limits exceed the boot size (Cloud
	// Hypervisor; QEMU's microvm cannot hotplug). 0 disables growing.
	MaxVCPUs         uint32 `toml:"max_vcpus"`
	HotplugMemoryMiB uint32 `toml:"hotplug_memory_mib"`
	// KernelParams are appended to Veil's kernel command line.
	KernelParams string `toml:"kernel_params"`
}

// Virtiofs configures the virtiofsd that shares the sandbox directory.
type Virtiofs struct {
	// Path is the virtiofsd binary.
	Path string `toml:"path"`
	// Cache is virtiofsd's --cache mode: auto, always or never.
	Cache string `toml:"cache"`
	// RlimitNofile bounds virtiofsd's open files, hence the inodes and
	// files a guest can keep pinned on the host (one descriptor each,
	// about 2.5 KB of kernel memory); past it the guest gets ENFILE.
	// Lowered to the shim's own hard limit when above it.
	RlimitNofile uint64 `toml:"rlimit_nofile"`
}

// Timeouts bound the slow steps of a sandbox's life.
type Timeouts struct {
	// VMStart bounds launch to a running guest.
	VMStart Duration `toml:"vm_start"`
	// AgentDial bounds the wait for the agent to answer after launch.
	AgentDial Duration `toml:"agent_dial"`
	// Stop bounds a graceful VM stop before the VMM is killed.
	Stop Duration `toml:"stop"`
	// AgentRequest bounds every request to a running agent but the
	// waits for a process's exit. A SIGKILL the agent does not answer
	// in time ends the VM (the guest is frozen or wedged).
	AgentRequest Duration `toml:"agent_request"`
}

// Duration is a time.Duration written as a string ("30s") in TOML.
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Default returns the configuration used where the file sets nothing.
func Default() *Config {
	return &Config{
		StateDir: "/run/veil/sandboxes",
		LogLevel: "info",
		Hypervisor: Hypervisor{
			Name: HypervisorAuto,
		},
		Guest: Guest{
			Kernel:    "/usr/share/veil/vmlinux",
			Initrd:    "/usr/share/veil/initramfs.cpio",
			VCPUs:     1,
			MemoryMiB: 256,
		},
		Virtiofs: Virtiofs{Cache: "auto", RlimitNofile: 65536},
		Volumes:  Volumes{AllowedHostPaths: []string{"/var/lib/kubelet"}},
		Jail: Jail{
			Enabled:        true,
			UIDBase:        DefaultUIDBase,
			UIDCount:       65536,
			RlimitNofile:   4096,
			RlimitFsizeMiB: 64,
		},
		Cgroups: Cgroups{
			Enabled:           true,
			Parent:            "/veil",
			MemoryOverheadMiB: 256,
			PidsLimit:         1024,
		},
		Console: Console{MaxBytes: 1 << 20},
		Pool:    defaultPool(),
		Monitor: defaultMonitor(),
		Timeouts: Timeouts{
			VMStart:   Duration{30 * time.Second},
			AgentDial: Duration{45 * time.Second},
			Stop:      Duration{3 * time.Second},
			// Runc in the guest takes a few seconds under TCG to create
			// a container; a healthy agent answers the rest in
			// milliseconds.
			AgentRequest: Duration{60 * time.Second},
		},
	}
}

// Load reads the file at path over the defaults. A missing file at the
// default path is not an error; a missing file anywhere else is.
func Load(path string) (*Config, error) {
	c := Default()
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && path == DefaultPath {
			return c, nil
		}
		return nil, fmt.Errorf("read config: %w", err)
	}
	dec := toml.NewDecoder(bytes.NewReader(b)).DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, describe(err))
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// LoadDefault loads $VEIL_CONFIG when set, else DefaultPath.
func LoadDefault() (*Config, error) {
	if p := os.Getenv(EnvPath); p != "" {
		return Load(p)
	}
	return Load(DefaultPath)
}

// describe turns go-toml's errors into ones that name the line and key.
func describe(err error) error {
	// A StrictMissingError unwraps to its DecodeErrors, so test it first.
	var serr *toml.StrictMissingError
	if errors.As(err, &serr) && len(serr.Errors) > 0 {
		e := serr.Errors[0]
		row, _ := e.Position()
		return fmt.Errorf("line %d: unknown key %q", row, joinKey(e.Key()))
	}
	var derr *toml.DecodeError
	if errors.As(err, &derr) {
		row, col := derr.Position()
		return fmt.Errorf("line %d, column %d: %s", row, col, derr.Error())
	}
	return err
}

func joinKey(k []string) string {
	var b bytes.Buffer
	for i, p := range k {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}

// Validate reports values that cannot work.
func (c *Config) Validate() error {
	if n := c.Hypervisor.Name; n != HypervisorAuto && n != "" && !slices.Contains(KnownHypervisors, n) {
		return fmt.Errorf("hypervisor.name: unknown hypervisor %q (known: %s, %s)",
			n, strings.Join(KnownHypervisors, ", "), HypervisorAuto)
	}
	if c.Guest.VCPUs == 0 {
		return errors.New("guest.vcpus: must be at least 1")
	}
	if c.Guest.MaxVCPUs != 0 && c.Guest.MaxVCPUs < c.Guest.VCPUs {
		return fmt.Errorf("guest.max_vcpus: %d is below guest.vcpus %d", c.Guest.MaxVCPUs, c.Guest.VCPUs)
	}
	if c.Guest.MemoryMiB < MinMemoryMiB {
		return fmt.Errorf("guest.memory_mib: %d is below the %d MiB minimum", c.Guest.MemoryMiB, MinMemoryMiB)
	}
	switch c.Virtiofs.Cache {
	case "auto", "always", "never":
	default:
		return fmt.Errorf("virtiofs.cache: unknown mode %q (auto, always, never)", c.Virtiofs.Cache)
	}
	for name, d := range map[string]Duration{"timeouts.vm_start": c.Timeouts.VMStart, "timeouts.agent_dial": c.Timeouts.AgentDial, "timeouts.stop": c.Timeouts.Stop, "timeouts.agent_request": c.Timeouts.AgentRequest} {
		if d.Duration <= 0 {
			return fmt.Errorf("%s: must be positive", name)
		}
	}
	if c.StateDir == "" {
		return errors.New("state_dir: must not be empty")
	}
	if err := c.Jail.validate(); err != nil {
		return err
	}
	if err := c.Cgroups.validate(); err != nil {
		return err
	}
	if err := c.Pool.validate(); err != nil {
		return err
	}
	if err := c.Monitor.validate(); err != nil {
		return err
	}
	if c.Virtiofs.RlimitNofile < 1024 {
		return fmt.Errorf("virtiofs.rlimit_nofile: %d is below 1024", c.Virtiofs.RlimitNofile)
	}
	if c.Console.MaxBytes < 4096 {
		return fmt.Errorf("console.max_bytes: %d is below 4096", c.Console.MaxBytes)
	}
	for _, p := range c.Volumes.AllowedHostPaths {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p {
			return fmt.Errorf("volumes.allowed_host_paths: %q is not a clean absolute path", p)
		}
		if p == "/" {
			return errors.New(`volumes.allowed_host_paths: "/" would share the whole host`)
		}
	}
	return nil
}
