package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
}

// Timeouts bound the slow steps of a sandbox's life.
type Timeouts struct {
	// VMStart bounds launch to a running guest.
	VMStart Duration `toml:"vm_start"`
	// AgentDial bounds the wait for the agent to answer after launch.
	AgentDial Duration `toml:"agent_dial"`
	// Stop bounds a graceful VM stop before the VMM is killed.
	Stop Duration `toml:"stop"`
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
		Virtiofs: Virtiofs{Cache: "auto"},
		Volumes:  Volumes{AllowedHostPaths: []string{"/var/lib/kubelet"}},
		Timeouts: Timeouts{
			VMStart:   Duration{30 * time.Second},
			AgentDial: Duration{45 * time.Second},
			Stop:      Duration{3 * time.Second},
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
	switch c.Hypervisor.Name {
	case HypervisorQEMU, HypervisorCloudHypervisor, HypervisorAuto, "":
	default:
		return fmt.Errorf("hypervisor.name: unknown hypervisor %q (known: %s, %s, %s)",
			c.Hypervisor.Name, HypervisorQEMU, HypervisorCloudHypervisor, HypervisorAuto)
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
	for name, d := range map[string]Duration{"timeouts.vm_start": c.Timeouts.VMStart, "timeouts.agent_dial": c.Timeouts.AgentDial, "timeouts.stop": c.Timeouts.Stop} {
		if d.Duration <= 0 {
			return fmt.Errorf("%s: must be positive", name)
		}
	}
	if c.StateDir == "" {
		return errors.New("state_dir: must not be empty")
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
