package ch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/containerd/errdefs"

	"github.com/veil-runtime/veil/generated/models"
	"github.com/veil-runtime/veil/runtime/hypervisor"
)

// The optional abilities of a Cloud Hypervisor VM.
var (
	_ hypervisor.DiskAdder      = (*vm)(nil)
	_ hypervisor.NetAdder       = (*vm)(nil)
	_ hypervisor.FSAdder        = (*vm)(nil)
	_ hypervisor.DeviceRemover  = (*vm)(nil)
	_ hypervisor.Resizer        = (*vm)(nil)
	_ hypervisor.Pauser         = (*vm)(nil)
	_ hypervisor.Snapshotter    = (*vm)(nil)
	_ hypervisor.CountersReader = (*vm)(nil)
	_ hypervisor.InfoReader     = (*vm)(nil)
)

// Resize retry policy while CH answers 429 (a vCPU removal is still
// pending): exponential backoff from resizeBackoff, at most
// resizeMaxBackoff between attempts, resizeAttempts attempts in all.
const (
	resizeAttempts   = 8
	resizeBackoff    = 10 * time.Millisecond
	resizeMaxBackoff = 200 * time.Millisecond
)

// vmmPath is a host path as the VMM sees it: itself unjailed; in a
// jailed VMM's root, only what lies in the helper directory (or was shown
// at start) exists.
func (v *vm) vmmPath(host string) (string, error) {
	if v.layout == nil {
		return host, nil
	}
	return v.layout.path(host)
}

// AddDisk is vm.add-disk.
func (v *vm) AddDisk(ctx context.Context, d hypervisor.Disk) (hypervisor.DeviceInfo, error) {
	path, err := v.vmmPath(d.Path)
	if err != nil {
		return hypervisor.DeviceInfo{}, fmt.Errorf("cloud-hypervisor vm.add-disk: %w", err)
	}
	dc := &models.DiskConfig{ID: d.ID, Path: path}
	if d.ReadOnly {
		dc.Readonly = ptr(true)
	}
	return deviceInfo(v.api.AddDisk(ctx, dc))
}

// AddNet is vm.add-net. A jailed VMM cannot set the tap's MTU (that
// needs CAP_NET_ADMIN): set it on the host; CH takes the tap's.
func (v *vm) AddNet(ctx context.Context, n hypervisor.NetDevice) (hypervisor.DeviceInfo, error) {
	if v.layout != nil && n.MTU != 0 {
		return hypervisor.DeviceInfo{}, fmt.Errorf("cloud-hypervisor vm.add-net: a jailed cloud-hypervisor cannot set tap %s's MTU to %d: set it on the tap", n.Tap, n.MTU)
	}
	return deviceInfo(v.api.AddNet(ctx, &models.NetConfig{ID: n.ID, Tap: n.Tap, Mac: n.MAC, Mtu: int64(n.MTU)}))
}

// AddFilesystem is vm.add-fs.
func (v *vm) AddFilesystem(ctx context.Context, fs hypervisor.Filesystem) (hypervisor.DeviceInfo, error) {
	sock, err := v.vmmPath(fs.Socket)
	if err != nil {
		return hypervisor.DeviceInfo{}, fmt.Errorf("cloud-hypervisor vm.add-fs: %w", err)
	}
	return deviceInfo(v.api.AddFs(ctx, fsConfig(hypervisor.Filesystem{Tag: fs.Tag, Socket: sock})))
}

func deviceInfo(pci *models.PciDeviceInfo, err error) (hypervisor.DeviceInfo, error) {
	if err != nil || pci == nil {
		// 204 (cold add) carries no device info.
		return hypervisor.DeviceInfo{}, err
	}
	var di hypervisor.DeviceInfo
	if pci.ID != nil {
		di.ID = *pci.ID
	}
	if pci.Bdf != nil {
		di.BDF = *pci.Bdf
	}
	return di, nil
}

// RemoveDevice is vm.remove-device.
func (v *vm) RemoveDevice(ctx context.Context, id string) error {
	return v.api.RemoveDevice(ctx, id)
}

// Resize is vm.resize, retried with backoff while CH answers 429.
func (v *vm) Resize(ctx context.Context, r hypervisor.Resize) error {
	if r.VCPUs == 0 && r.MemoryMiB == 0 {
		return errors.New("cloud-hypervisor vm.resize: nothing to change")
	}
	body := &models.VMResize{DesiredVcpus: int64(r.VCPUs), DesiredRAM: int64(r.MemoryMiB) << 20}
	backoff := resizeBackoff
	for attempt := 1; ; attempt++ {
		err := v.api.Resize(ctx, body)
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.Code != http.StatusTooManyRequests {
			return err
		}
		if attempt == resizeAttempts {
			return fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (retrying: %w)", err, ctx.Err())
		case <-t.C:
		}
		backoff = min(2*backoff, resizeMaxBackoff)
	}
}

// Pause is vm.pause. CH answers 405 for a VM that is not running
// (already paused): that is errdefs.ErrFailedPrecondition.
func (v *vm) Pause(ctx context.Context) error { return wrongState(v.api.Pause(ctx)) }

// Resume is vm.resume. CH answers 405 for a VM that is not paused: that
// is errdefs.ErrFailedPrecondition.
func (v *vm) Resume(ctx context.Context) error { return wrongState(v.api.Resume(ctx)) }

// wrongState classes CH's 405 Method Not Allowed, its answer to a state
// transition from the wrong state, as errdefs.ErrFailedPrecondition.
func wrongState(err error) error {
	var ae *APIError
	if errors.As(err, &ae) && ae.Code == http.StatusMethodNotAllowed {
		return fmt.Errorf("%w: %w", err, errdefs.ErrFailedPrecondition)
	}
	return err
}

// Snapshot is vm.snapshot into dir (CH wants the VM paused first); a
// jailed VMM writes only below the helper directory.
func (v *vm) Snapshot(ctx context.Context, dir string) error {
	p, err := v.vmmPath(dir)
	if err != nil {
		return fmt.Errorf("cloud-hypervisor vm.snapshot: %w", err)
	}
	return v.api.Snapshot(ctx, "file://"+p)
}

// Counters is vm.counters.
func (v *vm) Counters(ctx context.Context) (map[string]map[string]int64, error) {
	c, err := v.api.Counters(ctx)
	if err != nil {
		return nil, err
	}
	return map[string]map[string]int64(c), nil
}

// Info is vm.info.
func (v *vm) Info(ctx context.Context) (hypervisor.VMInfo, error) {
	info, err := v.api.Info(ctx)
	if err != nil {
		return hypervisor.VMInfo{}, err
	}
	raw, err := json.Marshal(info)
	if err != nil {
		return hypervisor.VMInfo{}, fmt.Errorf("cloud-hypervisor vm.info: encode: %w", err)
	}
	return hypervisor.VMInfo{State: stateOf(info), MemoryActualBytes: info.MemoryActualSize, Raw: raw}, nil
}
