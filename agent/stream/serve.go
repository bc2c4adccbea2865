package stream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/containerd/log"

	"github.com/veil-runtime/veil/agent/api"
)

// headerTimeout bounds how long a fresh connection may take to send its
// preamble.
const headerTimeout = 10 * time.Second

// Serve accepts stream connections on l and registers each under the key
// its header names, until ctx ends or l fails. Connections with a bad
// header are closed and logged; a newer connection for a key replaces an
// unclaimed older one (see Registry.Add).
func Serve(ctx context.Context, l net.Listener, r *Registry) error {
	stop := context.AfterFunc(ctx, func() { _ = l.Close() })
	defer stop()
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept stream connection on %s: %w", l.Addr(), err)
		}
		go func() {
			if err := Accept(conn, r); err != nil {
				log.G(ctx).WithError(err).WithField("remote", conn.RemoteAddr().String()).Warn("stream connection refused")
				_ = conn.Close()
			}
		}()
	}
}

// Accept reads the header of one fresh connection and registers it. On
// error the caller closes conn.
func Accept(conn net.Conn, r *Registry) error {
	if err := conn.SetReadDeadline(time.Now().Add(headerTimeout)); err != nil {
		return fmt.Errorf("%w: set deadline: %w", ErrBadHeader, err)
	}
	h, err := api.ReadStreamHeader(conn)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadHeader, err)
	}
	if err := conn.SetReadDeadline(time.Time{}); err != nil {
		return fmt.Errorf("%w: clear deadline: %w", ErrBadHeader, err)
	}
	return r.Add(KeyOf(h), conn)
}
