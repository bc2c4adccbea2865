package server

import (
	"context"
	"net"

	"github.com/containerd/log"
	"github.com/mdlayher/vsock"
)

// hostOnly is a vsock listener that hands out only connections from the
// host (CID 2). AF_VSOCK is not namespaced, so without this check a
// container process in the guest could reach the agent through a loopback
// transport and drive it.
type hostOnly struct {
	net.Listener
	ctx context.Context
}

// Accept returns the next connection whose peer is the host, closing and
// logging any other.
func (l hostOnly) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if fromHost(conn.RemoteAddr()) {
			return conn, nil
		}
		log.G(l.ctx).WithField("peer", conn.RemoteAddr().String()).Warn("refused a vsock connection that does not come from the host")
		_ = conn.Close()
	}
}

// fromHost reports whether addr is a vsock address of the host.
func fromHost(addr net.Addr) bool {
	a, ok := addr.(*vsock.Addr)
	return ok && a.ContextID == vsock.Host
}
