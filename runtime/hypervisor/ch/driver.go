package ch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/log"

	"github.com/veil-runtime/veil/generated/models"
	"github.com/veil-runtime/veil/runtime/hypervisor"
	"github.com/veil-runtime/veil/runtime/proc"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// DefaultBinary is the cloud-hypervisor binary looked up on PATH when
// Driver.Path is empty.
const DefaultBinary = "cloud-hypervisor"

// Names inside the sandbox directory. The process name gives
// cloud-hypervisor.log (its stdout and stderr) and cloud-hypervisor.pid.
const (
	processName   = "cloud-hypervisor"
	apiSocketName = statedir.CHAPISocket
)

// Defaults for the Driver's zero durations.
const (
	defaultAPITimeout   = 5 * time.Second
	defaultReadyTimeout = 10 * time.Second
	defaultBootTimeout  = 5 * time.Second
	defaultStopTimeout  = 3 * time.Second
)

// pollInterval paces vmm.ping while the API socket comes up and vm.info
// while the VM boots.
const pollInterval = 10 * time.Millisecond

// Driver starts Cloud Hypervisor VMs. The zero value works with
// cloud-hypervisor on PATH.
type Driver struct {
	// Path is the cloud-hypervisor binary; empty means cloud-hypervisor
	// on PATH.
	Path string
	// StopTimeout bounds the wait for the VMM to exit after vmm.shutdown
	// before it is killed (default 3s).
	StopTimeout time.Duration
	// APITimeout bounds every API call (default 5s).
	APITimeout time.Duration
	// ReadyTimeout bounds the wait for the API socket to answer vmm.ping
	// after launch (default 10s).
	ReadyTimeout time.Duration
	// BootTimeout bounds the wait for vm.info to report Running after
	// vm.boot or vm.restore (default 5s).
	BootTimeout time.Duration
	// MaxVCPUs is the vCPU ceiling for Resize; 0 (or less than the boot
	// count) means the boot count, i.e. no vCPU hotplug.
	MaxVCPUs uint32
	// HotplugMemoryMiB is how much memory Resize may add above the boot
	// size; 0 means no memory hotplug.
	HotplugMemoryMiB uint32
}

var (
	_ hypervisor.Hypervisor = (*Driver)(nil)
	_ hypervisor.Restorer   = (*Driver)(nil)
	// Adopt is the warm pool's take-over (runtime/sandbox's vmAdopter).
	_ interface {
		Adopt(context.Context, hypervisor.VMConfig) (hypervisor.VM, error)
	} = (*Driver)(nil)
)

// Start launches cloud-hypervisor, creates the VM (vm.create), checks it
// is Created, connects to its serial console (which vm.create made, so
// that the whole boot is kept), boots it (vm.boot) and returns once
// vm.info reports Running. On failure it stops what it started; the error
// names the failed step and holds CH's answer or its log tail.
func (d *Driver) Start(ctx context.Context, cfg hypervisor.VMConfig) (hypervisor.VM, error) {
	return d.launch(ctx, cfg, "", func(ctx context.Context, v *vm) error {
		if err := v.api.Create(ctx, buildVMConfig(v.paths, sizing{maxVCPUs: d.MaxVCPUs, hotplugMiB: d.HotplugMemoryMiB})); err != nil {
			return err
		}
		if err := v.wantState(ctx, models.VMStateCreated, "vm.create"); err != nil {
			return err
		}
		if err := v.attachConsole(ctx); err != nil {
			return err
		}
		if err := v.api.Boot(ctx); err != nil {
			return err
		}
		return v.waitRunning(ctx, "vm.boot")
	})
}

// Restore launches cloud-hypervisor and restores the VM saved in dir
// (vm.restore with resume), returning once vm.info reports Running. A
// jailed VMM sees dir, read-only, in its root. The serial console is the
// snapshot's: drained when the snapshot serves it on the console socket.
func (d *Driver) Restore(ctx context.Context, cfg hypervisor.VMConfig, dir string) (hypervisor.VM, error) {
	return d.launch(ctx, cfg, dir, func(ctx context.Context, v *vm) error {
		rc := &models.RestoreConfig{SourceURL: ptr("file://" + v.paths.snapshot), Resume: true}
		if err := v.api.Restore(ctx, rc); err != nil {
			return err
		}
		if err := v.attachConsole(ctx); err != nil {
			log.G(ctx).WithError(err).Warn("cloud-hypervisor: restored VM without its serial console")
		}
		return v.waitRunning(ctx, "vm.restore")
	})
}

// launch starts the VMM, waits for its API and runs setup. snapshot is
// the directory a VM is restored from ("" to boot one). Any failure rolls
// back: the VMM is shut down (or killed) and its files removed.
func (d *Driver) launch(ctx context.Context, cfg hypervisor.VMConfig, snapshot string, setup func(context.Context, *vm) error) (_ hypervisor.VM, retErr error) {
	path := d.Path
	if path == "" {
		path = DefaultBinary
	}
	var layout *jailLayout
	if cfg.Jail != nil {
		var err error
		if layout, err = newJailLayout(cfg, snapshot); err != nil {
			return nil, err
		}
	}
	v := d.newVM(cfg, layout, snapshot)
	defer func() {
		if retErr != nil {
			// Cleanup must run even when ctx expired.
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.stopTimeout+v.apiTimeout+5*time.Second)
			defer cancel()
			if err := v.Stop(sctx); err != nil {
				log.G(ctx).WithError(err).Warn("cloud-hypervisor: rollback of failed start")
			}
		}
	}()

	// Sockets left by a crashed VMM would make CH fail to bind its own.
	for _, p := range []string{v.apiSock, v.consoleSock, cfg.VsockSocket} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("cloud-hypervisor: remove stale socket: %w", err)
		}
	}
	var err error
	v.proc, err = proc.Start(ctx, launchSpec(cfg, path, v.paths.apiSocket, layout))
	if err != nil {
		return nil, err
	}

	// Every step ends at once when the VMM exits.
	sctx, cancel := v.untilExit(ctx)
	defer cancel()
	if err := v.waitReady(sctx, orDefault(d.ReadyTimeout, defaultReadyTimeout)); err != nil {
		return nil, v.startError(err)
	}
	if err := setup(sctx, v); err != nil {
		return nil, v.startError(err)
	}
	log.G(ctx).WithField("pid", v.proc.Pid()).Debug("cloud-hypervisor VM running")
	return v, nil
}

// newVM is the vm Start, Restore and Adopt drive for cfg.
func (d *Driver) newVM(cfg hypervisor.VMConfig, layout *jailLayout, snapshot string) *vm {
	v := &vm{
		cfg:         cfg,
		layout:      layout,
		paths:       vmmView(cfg, layout, snapshot),
		apiSock:     filepath.Join(cfg.Dir, apiSocketName),
		consoleSock: filepath.Join(cfg.Dir, statedir.CHConsoleSocket),
		stopTimeout: orDefault(d.StopTimeout, defaultStopTimeout),
		apiTimeout:  orDefault(d.APITimeout, defaultAPITimeout),
		bootTimeout: orDefault(d.BootTimeout, defaultBootTimeout),
	}
	v.api = newHTTPAPI(v.apiSock, v.apiTimeout)
	return v
}

// Adopt takes over a VM that Start ran with the same cfg in another
// process of the runtime (a warm pool's keeper, which stays its parent
// and keeps draining its serial console): the VMM's process by its pid
// file (proc.Adopt), then its API, which must answer vmm.ping and report
// the VM Running. On failure the VM keeps running and the error says
// why.
func (d *Driver) Adopt(ctx context.Context, cfg hypervisor.VMConfig) (hypervisor.VM, error) {
	var layout *jailLayout
	if cfg.Jail != nil {
		var err error
		if layout, err = newJailLayout(cfg, ""); err != nil {
			return nil, err
		}
	}
	v := d.newVM(cfg, layout, "")
	p, err := proc.Adopt(ctx, proc.Spec{Name: processName, Dir: cfg.Dir})
	if err != nil {
		return nil, fmt.Errorf("cloud-hypervisor: adopt: %w", err)
	}
	v.proc = p
	sctx, cancel := v.untilExit(ctx)
	defer cancel()
	err = v.waitReady(sctx, orDefault(d.ReadyTimeout, defaultReadyTimeout))
	if err == nil {
		err = v.wantState(sctx, models.VMStateRunning, "adopt")
	}
	if err != nil {
		p.Release()
		v.api.Close()
		return nil, fmt.Errorf("cloud-hypervisor: adopt: %w", v.startError(err))
	}
	return v, nil
}

// vmmPaths are the paths Cloud Hypervisor is given: those of its root
// when it is jailed, the host's otherwise.
type vmmPaths struct {
	// cfg is the VM's config with its Kernel, Initrd, VsockSocket and
	// Filesystems as the VMM sees them.
	cfg                      hypervisor.VMConfig
	apiSocket, consoleSocket string
	// snapshot is the restore source ("" when booting).
	snapshot string
}

// vmmView is cfg (and snapshot) as the VMM sees it: through layout when
// jailed (nil: not jailed).
func vmmView(cfg hypervisor.VMConfig, layout *jailLayout, snapshot string) vmmPaths {
	p := vmmPaths{
		cfg:           cfg,
		apiSocket:     filepath.Join(cfg.Dir, apiSocketName),
		consoleSocket: filepath.Join(cfg.Dir, statedir.CHConsoleSocket),
		snapshot:      snapshot,
	}
	if layout == nil {
		return p
	}
	p.apiSocket = layout.mustPath(p.apiSocket)
	p.consoleSocket = layout.mustPath(p.consoleSocket)
	if snapshot != "" {
		p.snapshot = layout.mustPath(snapshot)
	}
	p.cfg.Kernel = layout.mustPath(cfg.Kernel)
	if cfg.Initrd != "" {
		p.cfg.Initrd = layout.mustPath(cfg.Initrd)
	}
	p.cfg.VsockSocket = layout.mustPath(cfg.VsockSocket)
	p.cfg.Filesystems = nil
	for _, fs := range cfg.Filesystems {
		p.cfg.Filesystems = append(p.cfg.Filesystems, hypervisor.Filesystem{Tag: fs.Tag, Socket: layout.mustPath(fs.Socket)})
	}
	return p
}

// launchSpec is how Cloud Hypervisor is started: jailed when cfg says so
// (through layout; the jail stage then joins the pod's network
// namespace, no nsenter), in the sandbox's cgroup, with its seccomp
// filters on, serving its API on apiSock (its own view of it).
func launchSpec(cfg hypervisor.VMConfig, path, apiSock string, layout *jailLayout) proc.Spec {
	spec := proc.Spec{Name: processName, Dir: cfg.Dir, Path: path, Cgroup: cfg.Cgroup}
	if cfg.Jail != nil {
		spec.Jail = chJail(cfg, layout)
	} else {
		spec.NetNSPath = cfg.NetNSPath
	}
	spec.Args = []string{"--api-socket", apiSock, "--seccomp", "true"}
	return spec
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
