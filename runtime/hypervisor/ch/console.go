package ch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/containerd/log"

	"github.com/veil-runtime/veil/runtime/statedir"
)

// attachConsole connects to the serial console Cloud Hypervisor serves
// once the VM runs, and hands it to the config's sink until the VMM
// closes it. No sink, no console.
func (v *vm) attachConsole(ctx context.Context) error {
	if v.cfg.Console == nil {
		return nil
	}
	path := consoleSocket(v.cfg) // the host's view
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		c, err := statedir.DialUnix(ctx, path)
		if err == nil {
			go func() {
				defer c.Close()
				if err := v.cfg.Console.Drain(context.WithoutCancel(ctx), c); err != nil {
					log.G(ctx).WithError(err).Warn("cloud-hypervisor: guest console")
				}
			}()
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("serial console: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("serial console %s: %w (last: %v)", path, context.Cause(ctx), err)
		case <-t.C:
		}
	}
}
