package harness

import (
	"context"
	"fmt"
	"net"
)

// Listen opens a listener inside containerd's network namespace (a
// server on the host side of the pod network, for pods to reach).
func (c *Containerd) Listen(ctx context.Context, network, addr string) (net.Listener, error) {
	var l net.Listener
	err := inNetNS(netnsPath(c.NetNS), func() error {
		var lc net.ListenConfig
		var err error
		l, err = lc.Listen(ctx, network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen %s %s in netns %s: %w", network, addr, c.NetNS, err)
	}
	return l, nil
}
