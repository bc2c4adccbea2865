package sandbox

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/hypervisor"
)

// pausingVM records pauses and resumes, answering err.
type pausingVM struct {
	hypervisor.VM
	calls []string
	err   error
}

func (v *pausingVM) Pause(context.Context) error {
	v.calls = append(v.calls, "pause")
	return v.err
}

func (v *pausingVM) Resume(context.Context) error {
	v.calls = append(v.calls, "resume")
	return v.err
}

// pidVM is a VM with a VMM pid.
type pidVM struct{ hypervisor.VM }

func (pidVM) Pid() int { return 4242 }

func TestPauseResume(t *testing.T) {
	errVMM := errors.New("vmm said no")
	for _, tc := range []struct {
		name      string
		vm        hypervisor.VM
		wantCalls []string
		wantErr   error
	}{
		{name: "pauses and resumes", vm: &pausingVM{}, wantCalls: []string{"pause", "resume"}},
		{name: "VMM fails", vm: &pausingVM{err: errVMM}, wantCalls: []string{"pause", "resume"}, wantErr: errVMM},
		{name: "hypervisor cannot pause", vm: fixedVM{}, wantErr: errdefs.ErrNotImplemented},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Sandbox{id: "sb", cfg: config.Default(), vm: tc.vm, vmm: config.HypervisorQEMU}
			ctx := context.Background()
			for _, op := range []func(context.Context) error{s.Pause, s.Resume} {
				err := op(ctx)
				if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				if errdefs.IsNotImplemented(tc.wantErr) && !containsAll(err.Error(), "sb", config.HypervisorQEMU) {
					t.Fatalf("error %q does not name the sandbox and its hypervisor", err)
				}
			}
			if p, ok := tc.vm.(*pausingVM); ok && !slices.Equal(p.calls, tc.wantCalls) {
				t.Fatalf("calls %q, want %q", p.calls, tc.wantCalls)
			}
		})
	}
}

func TestVMMPid(t *testing.T) {
	s := &Sandbox{id: "sb", vm: pidVM{}}
	if got := s.VMMPid(); got != 4242 {
		t.Fatalf("VMMPid = %d", got)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
