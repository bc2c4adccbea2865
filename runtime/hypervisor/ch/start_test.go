package ch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/veil-runtime/veil/runtime/hypervisor"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// bootSequence is what a successful start calls, in order.
var bootSequence = []string{"vmm.ping", "vm.create", "vm.info", "vm.boot", "vm.info"}

func TestStart(t *testing.T) {
	const createErr = "Error creating VM: Cannot load kernel /veil/vmlinux: No such file or directory (os error 2)"
	cases := []struct {
		name string
		plan fakePlan
		tune func(*Driver)
		// vmcfg changes the VM's config.
		vmcfg func(*hypervisor.VMConfig)
		// running inspects a started VM before it is stopped.
		running func(t *testing.T, h *harness, v hypervisor.VM)
		// wantErr are substrings of Start's error (none: success).
		wantErr []string
		// wantSeq is the whole call sequence, the stop included.
		wantSeq []string
		check   func(t *testing.T, calls []fakeRecord)
	}{
		{
			name:    "boots and stops",
			wantSeq: append(append([]string{}, bootSequence...), "vmm.shutdown"),
			running: func(t *testing.T, h *harness, v hypervisor.VM) {
				b, err := os.ReadFile(filepath.Join(h.dir, "cloud-hypervisor.pid"))
				if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(v.Pid()) {
					t.Errorf("pid file = %q, %v; want %d", b, err, v.Pid())
				}
				start := h.startRecord(t)
				if want := []string{"--api-socket", filepath.Join(h.dir, statedir.CHAPISocket), "--seccomp", "true"}; !reflect.DeepEqual(start.Args, want) || start.Pid != v.Pid() {
					t.Errorf("VMM started as pid %d with %q, want pid %d with %q", start.Pid, start.Args, v.Pid(), want)
				}
				if lt := v.(hypervisor.LogTailer).LogTail(); !strings.Contains(lt, "API server: "+filepath.Join(h.dir, statedir.CHAPISocket)) {
					t.Errorf("LogTail lacks the VMM's output:\n%s", lt)
				}
				create := h.calls(t)[1]
				assertJSON(t, "vm.create", create.Body, fmt.Sprintf(`{
					"payload": {"kernel": "/veil/vmlinux", "initramfs": "/veil/initramfs.cpio", "cmdline": "console=ttyS0 quiet panic=-1"},
					"cpus": {"boot_vcpus": 2, "max_vcpus": 2},
					"memory": {"size": 268435456, "shared": true},
					"vsock": {"cid": 3, "socket": %[1]q},
					"fs": [{"tag": "veil", "socket": %[2]q, "num_queues": 1, "queue_size": 1024}],
					"serial": {"mode": "Null"},
					"console": {"mode": "Off"},
					"rng": {"src": "/dev/urandom"},
					"balloon": {"size": 0, "free_page_reporting": true}
				}`, filepath.Join(h.dir, statedir.VsockSocket), filepath.Join(h.dir, "virtiofsd.sock")))
			},
		},
		{
			name: "hotplug headroom sets max_vcpus and hotplug_size",
			tune: func(d *Driver) { d.MaxVCPUs, d.HotplugMemoryMiB = 4, 512 },
			running: func(t *testing.T, h *harness, v hypervisor.VM) {
				var body struct {
					Cpus   map[string]int64 `json:"cpus"`
					Memory map[string]any   `json:"memory"`
				}
				if err := jsonUnmarshal(h.calls(t)[1].Body, &body); err != nil {
					t.Fatal(err)
				}
				if body.Cpus["boot_vcpus"] != 2 || body.Cpus["max_vcpus"] != 4 || body.Memory["hotplug_size"] != float64(512<<20) {
					t.Errorf("vm.create cpus %v memory %v", body.Cpus, body.Memory)
				}
			},
			wantSeq: append(append([]string{}, bootSequence...), "vmm.shutdown"),
		},
		{
			name: "NICs become net devices on their taps",
			vmcfg: func(c *hypervisor.VMConfig) {
				c.NICs = []hypervisor.NIC{{Tap: "tap0_veil", MAC: "02:00:0a:00:00:02"}, {Tap: "tap1_veil", MAC: "02:00:0a:00:01:02"}}
			},
			running: func(t *testing.T, h *harness, v hypervisor.VM) {
				var body struct {
					Net []map[string]any `json:"net"`
				}
				if err := jsonUnmarshal(h.calls(t)[1].Body, &body); err != nil {
					t.Fatal(err)
				}
				want := []map[string]any{{"tap": "tap0_veil", "mac": "02:00:0a:00:00:02"}, {"tap": "tap1_veil", "mac": "02:00:0a:00:01:02"}}
				if !reflect.DeepEqual(body.Net, want) {
					t.Errorf("vm.create net = %v, want %v", body.Net, want)
				}
			},
			wantSeq: append(append([]string{}, bootSequence...), "vmm.shutdown"),
		},
		{
			name:    "pings retried until the API answers",
			plan:    fakePlan{Faults: map[string]fault{"vmm.ping": {Drop: true, Times: 3}}},
			wantSeq: append(append([]string{}, bootSequence...), "vmm.shutdown"),
			check: func(t *testing.T, calls []fakeRecord) {
				if n := count(calls, "vmm.ping"); n != 4 {
					t.Errorf("%d pings, want 3 dropped and 1 answered", n)
				}
			},
		},
		{
			name:    "vmm.ping refused",
			plan:    fakePlan{Faults: map[string]fault{"vmm.ping": {Status: 500, Body: "API server failed: too many connections"}}},
			wantErr: []string{"cloud-hypervisor vmm.ping: 500 Internal Server Error: API server failed: too many connections", "cloud-hypervisor.log"},
			wantSeq: []string{"vmm.ping", "vmm.shutdown"},
		},
		{
			name:    "VMM exits while being pinged",
			plan:    fakePlan{ExitOnPing: true},
			wantErr: []string{"not ready", "cloud-hypervisor (pid", "exit status 1", fakeKVMError},
			wantSeq: []string{"vmm.ping"},
		},
		{
			name:    "vm.create fails with a body",
			plan:    fakePlan{Faults: map[string]fault{"vm.create": {Status: 500, Body: createErr}}},
			wantErr: []string{"cloud-hypervisor vm.create: 500 Internal Server Error: " + createErr},
			wantSeq: []string{"vmm.ping", "vm.create", "vmm.shutdown"},
		},
		{
			name:    "vm.create answers slower than the API timeout",
			plan:    fakePlan{Faults: map[string]fault{"vm.create": {Hang: true}}},
			tune:    func(d *Driver) { d.APITimeout = time.Second },
			wantErr: []string{"cloud-hypervisor vm.create: no answer within 1s", "deadline exceeded"},
			wantSeq: []string{"vmm.ping", "vm.create", "vmm.shutdown"},
		},
		{
			name:    "vm.info is not Created after vm.create",
			plan:    fakePlan{StateAfterCreate: "Shutdown"},
			wantErr: []string{"cloud-hypervisor: VM is Shutdown after vm.create, want Created"},
			wantSeq: []string{"vmm.ping", "vm.create", "vm.info", "vmm.shutdown"},
		},
		{
			name:    "vm.boot 404",
			plan:    fakePlan{Faults: map[string]fault{"vm.boot": {Status: 404}}},
			wantErr: []string{"cloud-hypervisor vm.boot: 404 Not Found"},
			wantSeq: []string{"vmm.ping", "vm.create", "vm.info", "vm.boot", "vmm.shutdown"},
		},
		{
			name:    "vm.boot fails with a body",
			plan:    fakePlan{Faults: map[string]fault{"vm.boot": {Status: 500, Body: "Error booting VM: InitramfsLoad"}}},
			wantErr: []string{"cloud-hypervisor vm.boot: 500 Internal Server Error: Error booting VM: InitramfsLoad"},
			wantSeq: []string{"vmm.ping", "vm.create", "vm.info", "vm.boot", "vmm.shutdown"},
		},
		{
			name:    "vm.boot answers slower than the API timeout",
			plan:    fakePlan{Faults: map[string]fault{"vm.boot": {Hang: true}}},
			tune:    func(d *Driver) { d.APITimeout = time.Second },
			wantErr: []string{"cloud-hypervisor vm.boot: no answer within 1s"},
			wantSeq: []string{"vmm.ping", "vm.create", "vm.info", "vm.boot", "vmm.shutdown"},
		},
		{
			name:    "VM never reaches Running",
			plan:    fakePlan{StateAfterBoot: "Created"},
			tune:    func(d *Driver) { d.BootTimeout = time.Second },
			wantErr: []string{"cloud-hypervisor: VM still Created, not Running, ", "after vm.boot", "deadline exceeded"},
			wantSeq: []string{"vmm.ping", "vm.create", "vm.info", "vm.boot", "vm.info", "vmm.shutdown"},
			check: func(t *testing.T, calls []fakeRecord) {
				if n := count(calls, "vm.info"); n < 3 {
					t.Errorf("vm.info called %d times: the driver did not poll", n)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.plan)
			if tc.tune != nil {
				tc.tune(h.driver)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cfg := h.config()
			if tc.vmcfg != nil {
				tc.vmcfg(&cfg)
			}
			v, err := h.driver.Start(ctx, cfg)
			assertErr(t, err, tc.wantErr)
			if err == nil {
				if tc.running != nil {
					tc.running(t, h, v)
				}
				stopVM(t, v)
			}
			calls := h.calls(t)
			assertSequence(t, calls, tc.wantSeq)
			if tc.check != nil {
				tc.check(t, calls)
			}
			h.assertGone(t, h.startRecord(t).Pid)
		})
	}
}

func TestStartWithoutBinary(t *testing.T) {
	h := newHarness(t, fakePlan{})
	h.driver.Path = filepath.Join(t.TempDir(), "no-cloud-hypervisor")
	_, err := h.driver.Start(context.Background(), h.config())
	assertErr(t, err, []string{"cloud-hypervisor: start", "no-cloud-hypervisor"})
}

// TestStartHonoursContext: a caller's deadline ends the wait for the API
// even when the driver's own timeouts are longer, and the VMM is gone.
func TestStartHonoursContext(t *testing.T) {
	h := newHarness(t, fakePlan{Faults: map[string]fault{"vmm.ping": {Drop: true}}})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := h.driver.Start(ctx, h.config())
	assertErr(t, err, []string{"not ready", "deadline exceeded"})
	// The fake may not even have listened by then; whatever it received
	// must be pings, and the rollback's vmm.shutdown when it listened.
	for _, c := range h.calls(t) {
		if c.Endpoint != "vmm.ping" && c.Endpoint != "vmm.shutdown" {
			t.Errorf("unexpected call %s", c.Endpoint)
		}
	}
	pid := 0
	for _, r := range h.records(t) {
		if r.Event == "start" {
			pid = r.Pid
		}
	}
	h.assertGone(t, pid)
}
