package sandbox

import (
	"context"
	"time"

	"github.com/veil-runtime/veil/runtime/cleanup"
)

// vmmExitGrace is how long a VMM may take to exit after virtiofsd saw it
// disconnect, before virtiofsd's exit counts as its own failure.
const vmmExitGrace = 2 * time.Second

// watchVirtiofsd stops the VM when virtiofsd dies under it: the guest's
// filesystem is gone, and Done tells the owner. virtiofsd also exits when
// a dying VMM closes its socket; that case is told apart by the VMM's exit
// following within vmmExitGrace.
func (s *Sandbox) watchVirtiofsd(ctx context.Context) {
	select {
	case <-s.stopping:
		return
	case <-s.vm.Done():
		return
	case <-s.fsd.Done():
	}
	t := time.NewTimer(vmmExitGrace)
	defer t.Stop()
	select {
	case <-s.stopping:
		return
	case <-s.vm.Done():
		return
	case <-t.C:
	}
	lg := logger(ctx, s.id)
	lg.WithError(s.fsd.ExitError()).Error("virtiofsd died: stopping the VM")
	sctx, cancel := cleanup.Context(ctx, 0)
	defer cancel()
	if err := s.vm.Stop(sctx); err != nil {
		lg.WithError(err).Warn("stop VM after virtiofsd died")
	}
}
