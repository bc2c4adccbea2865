package ch

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/containerd/log"

	"github.com/veil-runtime/veil/runtime/statedir"
)

// consoleGrace bounds how long Stop waits, after the VMM is gone, for
// the console's last bytes to reach the sink before it closes the
// connection.
const consoleGrace = time.Second

// serialConsole is the host's connection to the serial console and the
// goroutine draining it into the config's sink.
type serialConsole struct {
	conn   net.Conn
	cancel context.CancelFunc
	done   chan struct{}
}

// attachConsole connects to the serial console Cloud Hypervisor serves
// on the console socket and hands it to the config's sink until the VMM
// closes it. CH binds the socket (without removing a stale one, which
// launch did) while it handles vm.create or vm.restore, so it exists once
// they answered; the connection waits in the socket's backlog until the
// VM's serial port runs, and so gets the whole boot. No sink, no console.
func (v *vm) attachConsole(ctx context.Context) error {
	if v.cfg.Console == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, v.apiTimeout)
	defer cancel()
	// The socket lies in the jail uid's helper directory: never follow a
	// name found there.
	c, err := statedir.DialUnix(ctx, v.consoleSock)
	if err != nil {
		return fmt.Errorf("serial console: %w", err)
	}
	v.startDrain(ctx, c)
	return nil
}

// startDrain copies c into the sink until the VMM closes it or Stop ends
// the copy.
func (v *vm) startDrain(ctx context.Context, c net.Conn) {
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	sc := &serialConsole{conn: c, cancel: cancel, done: make(chan struct{})}
	v.console = sc
	go func() {
		defer close(sc.done)
		defer func() { _ = c.Close() }()
		// Stop ending the copy is no error.
		if err := v.cfg.Console.Drain(dctx, c); err != nil && dctx.Err() == nil {
			log.G(dctx).WithError(err).Warn("cloud-hypervisor: guest console")
		}
	}()
}

// closeConsole waits, once the VMM is gone, a little for the sink to get
// the console's last bytes, then ends the copy.
func (v *vm) closeConsole() {
	sc := v.console
	if sc == nil {
		return
	}
	select {
	case <-sc.done:
	case <-time.After(consoleGrace):
		sc.cancel()
		_ = sc.conn.Close()
		<-sc.done
	}
	sc.cancel()
}
