package ch

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/veil-runtime/veil/runtime/hypervisor"
	"github.com/veil-runtime/veil/test/integration"
)

func TestRestore(t *testing.T) {
	cases := []struct {
		name    string
		plan    fakePlan
		wantErr []string
		wantSeq []string
	}{
		{
			name:    "restores resumed",
			wantSeq: []string{"vmm.ping", "vm.restore", "vm.info", "vmm.shutdown"},
		},
		{
			name:    "vm.restore fails with a body",
			plan:    fakePlan{Faults: map[string]fault{"vm.restore": {Status: 500, Body: "Error restoring VM: snapshot config.json: No such file or directory"}}},
			wantErr: []string{"cloud-hypervisor vm.restore: 500 Internal Server Error: Error restoring VM: snapshot config.json"},
			wantSeq: []string{"vmm.ping", "vm.restore", "vmm.shutdown"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.plan)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var r hypervisor.Restorer = h.driver
			v, err := r.Restore(ctx, h.config(), "/var/lib/veil/snap1")
			assertErr(t, err, tc.wantErr)
			if err == nil {
				stopVM(t, v)
			}
			calls := h.calls(t)
			assertSequence(t, calls, tc.wantSeq)
			if len(calls) > 1 && calls[1].Endpoint == "vm.restore" {
				assertJSON(t, "vm.restore", calls[1].Body, `{"source_url":"file:///var/lib/veil/snap1","resume":true}`)
			}
			h.assertGone(t, h.startRecord(t).Pid)
		})
	}
}

// TestEveryEndpointExercised drives one VM through every ability, plus a
// restore, and checks that together they call exactly the endpoints the
// driver's vmmAPI wraps, each validated by the fake against the spec.
func TestEveryEndpointExercised(t *testing.T) {
	want := []string{
		"vmm.ping", "vm.create", "vm.info", "vm.boot", "vmm.shutdown",
		"vm.add-disk", "vm.add-net", "vm.add-fs", "vm.remove-device", "vm.resize",
		"vm.pause", "vm.resume", "vm.snapshot", "vm.restore", "vm.counters",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seen := map[string]bool{}

	h := newHarness(t, fakePlan{})
	v := h.start(t)
	steps := []struct {
		name string
		run  func() error
	}{
		{"AddDisk", func() error {
			_, err := v.(hypervisor.DiskAdder).AddDisk(ctx, hypervisor.Disk{Path: "/img/d.raw"})
			return err
		}},
		{"AddNet", func() error {
			_, err := v.(hypervisor.NetAdder).AddNet(ctx, hypervisor.NetDevice{Tap: "tap1"})
			return err
		}},
		{"AddFilesystem", func() error {
			_, err := v.(hypervisor.FSAdder).AddFilesystem(ctx, hypervisor.Filesystem{Tag: "t", Socket: "/run/t.sock"})
			return err
		}},
		{"RemoveDevice", func() error { return v.(hypervisor.DeviceRemover).RemoveDevice(ctx, "_dev1") }},
		{"Resize", func() error { return v.(hypervisor.Resizer).Resize(ctx, hypervisor.Resize{VCPUs: 1}) }},
		{"Counters", func() error { _, err := v.(hypervisor.CountersReader).Counters(ctx); return err }},
		{"Info", func() error { _, err := v.(hypervisor.InfoReader).Info(ctx); return err }},
		{"Pause", func() error { return v.(hypervisor.Pauser).Pause(ctx) }},
		{"Snapshot", func() error { return v.(hypervisor.Snapshotter).Snapshot(ctx, "/snap") }},
		{"Resume", func() error { return v.(hypervisor.Pauser).Resume(ctx) }},
		{"Stop", func() error { return v.Stop(ctx) }},
	}
	for _, s := range steps {
		if err := s.run(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	for _, c := range h.calls(t) {
		seen[c.Endpoint] = true
	}

	h2 := newHarness(t, fakePlan{})
	v2, err := h2.driver.Restore(ctx, h2.config(), "/snap")
	if err != nil {
		t.Fatal(err)
	}
	stopVM(t, v2)
	for _, c := range h2.calls(t) {
		seen[c.Endpoint] = true
	}

	for _, e := range want {
		if !seen[e] {
			t.Errorf("endpoint %s never called", e)
		}
		delete(seen, e)
	}
	for e := range seen {
		t.Errorf("unexpected endpoint %s called", e)
	}
}

// TestStartInNetNS checks that the VMM runs inside VMConfig.NetNSPath
// (through nsenter, as proc does it): a fresh namespace held by an
// `unshare --net` child. It needs root.
func TestStartInNetNS(t *testing.T) {
	integration.Require(t, integration.Root, integration.Binaries("unshare", "nsenter"))
	own, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	holder := exec.Command("unshare", "--net", "sleep", "600")
	if err := holder.Start(); err != nil {
		t.Fatalf("unshare: %v", err)
	}
	t.Cleanup(func() {
		_ = holder.Process.Kill()
		_ = holder.Wait()
	})
	nsPath := fmt.Sprintf("/proc/%d/ns/net", holder.Process.Pid)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// unshare switches namespace before it execs sleep.
	want := own
	for want == own {
		if want, err = os.Readlink(nsPath); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
			t.Fatal("unshare never entered a new network namespace")
		case <-time.After(5 * time.Millisecond):
		}
	}

	h := newHarness(t, fakePlan{})
	cfg := h.config()
	cfg.NetNSPath = nsPath
	v, err := h.driver.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	stopVM(t, v)
	start := h.startRecord(t)
	if start.NetNS != want || start.Pid != v.Pid() {
		t.Errorf("VMM pid %d in %q, want pid %d (nsenter execs) in %q", start.Pid, start.NetNS, v.Pid(), want)
	}
	assertSequence(t, h.calls(t), append(append([]string{}, bootSequence...), "vmm.shutdown"))
}

// TestAdopt: a VM Start ran is taken over by a second driver, as a shim
// takes over a warm pool VM its keeper started: the adopter pings the API
// and checks the VM runs, and its Stop shuts the VMM down. A VMM that is
// not running, or whose VM is not Running, is refused and left alone.
func TestAdopt(t *testing.T) {
	cases := []struct {
		name    string
		faults  map[string]fault
		wantErr []string
		wantSeq []string
	}{
		{
			name:    "adopted and stopped",
			wantSeq: []string{"vmm.ping", "vm.create", "vm.info", "vm.boot", "vm.info", "vmm.ping", "vm.info", "vmm.shutdown"},
		},
		{
			name:    "vm.info fails",
			faults:  map[string]fault{"vm.info": {Status: 500, Body: "VM is not booted"}},
			wantErr: []string{"cloud-hypervisor: adopt:", "VM is not booted"},
			wantSeq: []string{"vmm.ping", "vm.create", "vm.info", "vm.boot", "vm.info", "vmm.ping", "vm.info", "vmm.shutdown"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, fakePlan{})
			started := h.start(t)
			if tc.faults != nil {
				h.setFaults(t, tc.faults)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			adopter := *h.driver
			v, err := adopter.Adopt(ctx, h.config())
			assertErr(t, err, tc.wantErr)
			if err != nil {
				select {
				case <-started.Done():
					t.Fatal("a refused adoption ended the VM")
				default:
				}
				return // the harness stops the VM it started
			}
			if v.Pid() != started.Pid() {
				t.Errorf("adopted pid %d, started %d", v.Pid(), started.Pid())
			}
			stopVM(t, v)
			select {
			case <-started.Done():
			case <-ctx.Done():
				t.Fatal("the VMM survived the adopter's Stop")
			}
			assertSequence(t, h.calls(t), tc.wantSeq)
			h.assertGone(t, started.Pid())
		})
	}
}

func TestAdoptNothingRunning(t *testing.T) {
	h := newHarness(t, fakePlan{})
	_, err := h.driver.Adopt(context.Background(), h.config())
	assertErr(t, err, []string{"cloud-hypervisor: adopt:", "cloud-hypervisor.pid"})
}
