package ch

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/veil-runtime/veil/runtime/hypervisor"
)

// wantCall is an expected request: its endpoint and, when set, its body.
type wantCall struct {
	endpoint string
	body     string
}

// as asserts that v implements T.
func as[T any](t *testing.T, v hypervisor.VM) T {
	t.Helper()
	x, ok := v.(T)
	if !ok {
		var zero T
		t.Fatalf("VM does not implement %T", &zero)
	}
	return x
}

func TestAbilities(t *testing.T) {
	cases := []struct {
		name    string
		faults  map[string]fault
		tune    func(*Driver)
		do      func(t *testing.T, ctx context.Context, v hypervisor.VM) error
		wantErr []string
		want    []wantCall
	}{
		{
			name: "add disk",
			do: func(t *testing.T, ctx context.Context, v hypervisor.VM) error {
				di, err := as[hypervisor.DiskAdder](t, v).AddDisk(ctx, hypervisor.Disk{ID: "disk1", Path: "/img/disk1.raw", ReadOnly: true})
				if want := (hypervisor.DeviceInfo{ID: "disk1", BDF: "0000:00:06.0"}); err == nil && di != want {
					t.Errorf("DeviceInfo = %+v, want %+v", di, want)
				}
				return err
			},
			want: []wantCall{{"vm.add-disk", `{"id":"disk1","path":"/img/disk1.raw","readonly":true}`}},
		},
		{
			name:   "add disk fails with a body",
			faults: map[string]fault{"vm.add-disk": {Status: 500, Body: "Error adding disk: /img/x.raw: No such file or directory"}},
			do: func(t *testing.T, ctx context.Context, v hypervisor.VM) error {
				_, err := as[hypervisor.DiskAdder](t, v).AddDisk(ctx, hypervisor.Disk{Path: "/img/x.raw"})
				return err
			},
			wantErr: []string{"cloud-hypervisor vm.add-disk: 500 Internal Server Error: Error adding disk: /img/x.raw: No such file or directory"},
			want:    []wantCall{{"vm.add-disk", `{"path":"/img/x.raw"}`}},
		},
		{
			name: "add net",
			do: func(t *testing.T, ctx context.Context, v hypervisor.VM) error {
				_, err := as[hypervisor.NetAdder](t, v).AddNet(ctx, hypervisor.NetDevice{ID: "net1", Tap: "tap0", MAC: "52:54:00:12:34:56", MTU: 1500})
				return err
			},
			want: []wantCall{{"vm.add-net", `{"id":"net1","tap":"tap0","mac":"52:54:00:12:34:56","mtu":1500}`}},
		},
		{
			name: "add filesystem",
			do: func(t *testing.T, ctx context.Context, v hypervisor.VM) error {
				di, err := as[hypervisor.FSAdder](t, v).AddFilesystem(ctx, hypervisor.Filesystem{Tag: "extra", Socket: "/run/extra.sock"})
				if err == nil && di.ID != "_dev1" {
					t.Errorf("DeviceInfo = %+v, want the id CH chose", di)
				}
				return err
			},
			want: []wantCall{{"vm.add-fs", `{"tag":"extra","socket":"/run/extra.sock","num_queues":1,"queue_size":1024}`}},
		},
		{
			name: "remove device",
			do: func(t *testing.T, ctx context.Context, v hypervisor.VM) error {
				return as[hypervisor.DeviceRemover](t, v).RemoveDevice(ctx, "disk1")
			},
			want: []wantCall{{"vm.remove-device", `{"id":"disk1"}`}},
		},
		{
			name:   "remove unknown device",
			faults: map[string]fault{"vm.remove-device": {Status: 404}},
			do: func(t *testing.T, ctx context.Context, v hypervisor.VM) error {
				return as[hypervisor.DeviceRemover](t, v).RemoveDevice(ctx, "nope")
			},
			wantErr: []string{"cloud-hypervisor vm.remove-device: 404 Not Found"},
			want:    []wantCall{{"vm.remove-device", `{"id":"nope"}`}},
		},
		{
			name: "resize vCPUs and memory",
			do: func(t *testing.T, ctx context.Context, v hypervisor.VM) error {
				return as[hypervisor.Resizer](t, v).Resize(ctx, hypervisor.Resize{VCPUs: 2, MemoryMiB: 512})
			},
			want: []wantCall{{"vm.resize", `{"desired_vcpus":2,"desired_ram":536870912}`}},
		},
		{
			name:   "resize retried while CH answers 429",
			faults: map[string]fault{"vm.resize": {Status: 429, Body: "CPU removal pending", Times: 2}},
			do: func(t *testing.T, ctx context.Context, v hypervisor.VM) error {
				return as[hypervisor.Resizer](t, v).Resize(ctx, hypervisor.Resize{VCPUs: 1})
			},
			want: []wantCall{{"vm.resize", `{"desired_vcpus":1}`}, {"vm.resize", `{"desired_vcpus":1}`}, {"vm.resize", `{"desired_vcpus":1}`}},
		},
		{
			name:   "resize gives up after a bounded number of 429s",
			faults: map[string]fault{"vm.resize": {Status: 429, Body: "CPU removal pending"}},
			do: func(t *testing.T, ctx context.Context, v hypervisor.VM) error {
				return as[hypervisor.Resizer](t, v).Resize(ctx, hypervisor.Resize{VCPUs: 1})
			},
			wantErr: []string{"cloud-hypervisor vm.resize: 429 Too Many Requests: CPU removal pending", fmt.Sprintf("gave up after %d attempts", resizeAttempts)},
			want:    repeat(wantCall{"vm.resize", `{"desired_vcpus":1}`}, resizeAttempts),
		},
		{
			name: "resize to nothing is refused locally",
			do: func(t *testing.T, ctx context.Context, v hypervisor.VM) error {
				return as[hypervisor.Resizer](t, v).Resize(ctx, hypervisor.Resize{})
			},
			wantErr: []string{"vm.resize: nothing to change"},
		},
		{
			name: "pause and resume",
			do: func(t *testing.T, ctx context.Context, v hypervisor.VM) error {
				if err := as[hypervisor.Pauser](t, v).Pause(ctx); err != nil {
					return err
				}
				if info, err := as[hypervisor.InfoReader](t, v).Info(ctx); err != nil || info.State != "Paused" {
					t.Errorf("after Pause: state %q, %v", info.State, err)
				}
				if err := as[hypervisor.Pauser](t, v).Resume(ctx); err != nil {
					return err
				}
				if info, err := as[hypervisor.InfoReader](t, v).Info(ctx); err != nil || info.State != "Running" {
					t.Errorf("after Resume: state %q, %v", info.State, err)
				}
				return nil
			},
			want: []wantCall{{endpoint: "vm.pause"}, {endpoint: "vm.info"}, {endpoint: "vm.resume"}, {endpoint: "vm.info"}},
		},
		{
			name: "resume of a running VM",
			do: func(t *testing.T, ctx context.Context, v hypervisor.VM) error {
				err := as[hypervisor.Pauser](t, v).Resume(ctx)
				if !errdefs.IsFailedPrecondition(err) {
					t.Errorf("Resume of a running VM: %v, want FailedPrecondition", err)
				}
				return err
			},
			wantErr: []string{"cloud-hypervisor vm.resume: 405 Method Not Allowed"},
			want:    []wantCall{{endpoint: "vm.resume"}},
		},
		{
			name: "pause of a paused VM",
			do: func(t *testing.T, ctx context.Context, v hypervisor.VM) error {
				p := as[hypervisor.Pauser](t, v)
				if err := p.Pause(ctx); err != nil {
					t.Fatalf("first Pause: %v", err)
				}
				err := p.Pause(ctx)
				if !errdefs.IsFailedPrecondition(err) {
					t.Errorf("Pause of a paused VM: %v, want FailedPrecondition", err)
				}
				return err
			},
			wantErr: []string{"cloud-hypervisor vm.pause: 405 Method Not Allowed"},
			want:    []wantCall{{endpoint: "vm.pause"}, {endpoint: "vm.pause"}},
		},
		{
			name: "snapshot of a paused VM",
			do: func(t *testing.T, ctx context.Context, v hypervisor.VM) error {
				if err := as[hypervisor.Pauser](t, v).Pause(ctx); err != nil {
					return err
				}
				return as[hypervisor.Snapshotter](t, v).Snapshot(ctx, "/var/lib/veil/snap1")
			},
			want: []wantCall{{endpoint: "vm.pause"}, {"vm.snapshot", `{"destination_url":"file:///var/lib/veil/snap1"}`}},
		},
		{
			name: "snapshot of a running VM",
			do: func(t *testing.T, ctx context.Context, v hypervisor.VM) error {
				return as[hypervisor.Snapshotter](t, v).Snapshot(ctx, "/var/lib/veil/snap1")
			},
			wantErr: []string{"cloud-hypervisor vm.snapshot: 500 Internal Server Error: Error snapshotting VM: VM is not paused"},
			want:    []wantCall{{"vm.snapshot", `{"destination_url":"file:///var/lib/veil/snap1"}`}},
		},
		{
			name: "counters",
			do: func(t *testing.T, ctx context.Context, v hypervisor.VM) error {
				c, err := as[hypervisor.CountersReader](t, v).Counters(ctx)
				if want := map[string]map[string]int64{"_fs0": {"read_bytes": 4096, "write_bytes": 512}}; err == nil && !reflect.DeepEqual(c, want) {
					t.Errorf("Counters = %v, want %v", c, want)
				}
				return err
			},
			want: []wantCall{{endpoint: "vm.counters"}},
		},
		{
			name: "info",
			do: func(t *testing.T, ctx context.Context, v hypervisor.VM) error {
				info, err := as[hypervisor.InfoReader](t, v).Info(ctx)
				if err == nil && (info.State != "Running" || info.MemoryActualBytes != 256<<20 || !strings.Contains(string(info.Raw), `"kernel":"/veil/vmlinux"`)) {
					t.Errorf("Info = %+v (raw %s)", info, info.Raw)
				}
				return err
			},
			want: []wantCall{{endpoint: "vm.info"}},
		},
		{
			name:   "info answers slower than the API timeout",
			faults: map[string]fault{"vm.info": {Hang: true}},
			tune:   func(d *Driver) { d.APITimeout = time.Second },
			do: func(t *testing.T, ctx context.Context, v hypervisor.VM) error {
				_, err := as[hypervisor.InfoReader](t, v).Info(ctx)
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("err %v does not wrap context.DeadlineExceeded", err)
				}
				return err
			},
			wantErr: []string{"cloud-hypervisor vm.info: no answer within 1s"},
			want:    []wantCall{{endpoint: "vm.info"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, fakePlan{})
			if tc.tune != nil {
				tc.tune(h.driver)
			}
			v := h.start(t)
			// Faults start after the boot, so that Start succeeds.
			h.setFaults(t, tc.faults)
			before := len(h.calls(t))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			assertErr(t, tc.do(t, ctx, v), tc.wantErr)
			got := h.calls(t)[before:]
			if len(got) != len(tc.want) {
				t.Fatalf("calls %v, want %v", sequenceAll(got), tc.want)
			}
			for i, w := range tc.want {
				if got[i].Endpoint != w.endpoint {
					t.Errorf("call %d = %s, want %s", i, got[i].Endpoint, w.endpoint)
					continue
				}
				if w.body != "" {
					assertJSON(t, w.endpoint, got[i].Body, w.body)
				}
			}
		})
	}
}

func repeat(c wantCall, n int) []wantCall {
	out := make([]wantCall, n)
	for i := range out {
		out[i] = c
	}
	return out
}

// sequenceAll lists every call's endpoint.
func sequenceAll(calls []fakeRecord) []string {
	out := make([]string, len(calls))
	for i, c := range calls {
		out[i] = c.Endpoint
	}
	return out
}
