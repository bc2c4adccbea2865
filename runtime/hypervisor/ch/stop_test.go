package ch

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/veil-runtime/veil/runtime/hypervisor"
)

func TestStop(t *testing.T) {
	cases := []struct {
		name string
		plan fakePlan
		tune func(*Driver)
		// before runs between Start and Stop.
		before  func(t *testing.T, h *harness, v hypervisor.VM)
		wantSeq []string
	}{
		{
			name: "vmm.shutdown ends the VMM",
			before: func(t *testing.T, h *harness, v hypervisor.VM) {
				// CH creates the hybrid vsock socket; Stop removes it.
				if err := os.WriteFile(h.config().VsockSocket, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			wantSeq: append(append([]string{}, bootSequence...), "vmm.shutdown"),
		},
		{
			name:    "VMM that ignores vmm.shutdown is killed after the stop timeout",
			plan:    fakePlan{IgnoreShutdown: true},
			tune:    func(d *Driver) { d.StopTimeout = 100 * time.Millisecond },
			wantSeq: append(append([]string{}, bootSequence...), "vmm.shutdown"),
		},
		{
			name: "VMM whose vmm.shutdown hangs is killed",
			plan: fakePlan{Faults: map[string]fault{"vmm.shutdown": {Hang: true}}},
			tune: func(d *Driver) {
				d.APITimeout, d.StopTimeout = 200*time.Millisecond, 100*time.Millisecond
			},
			wantSeq: append(append([]string{}, bootSequence...), "vmm.shutdown"),
		},
		{
			name: "VMM that died is only reaped",
			before: func(t *testing.T, h *harness, v hypervisor.VM) {
				if err := syscall.Kill(v.Pid(), syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				<-v.Done()
			},
			wantSeq: bootSequence,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.plan)
			if tc.tune != nil {
				tc.tune(h.driver)
			}
			v := h.start(t)
			if tc.before != nil {
				tc.before(t, h, v)
			}
			stopVM(t, v)
			select {
			case <-v.Done():
			default:
				t.Fatal("Done not closed after Stop")
			}
			stopVM(t, v) // idempotent
			assertSequence(t, h.calls(t), tc.wantSeq)
			h.assertGone(t, v.Pid())
		})
	}
}
