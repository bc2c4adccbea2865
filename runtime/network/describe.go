package network

import (
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/agent/api"
)

// interfaceFor describes a pod interface for the guest: its name, MAC,
// MTU and global addresses (link-local ones the guest makes itself).
func interfaceFor(a *netlink.LinkAttrs, addrs []netlink.Addr) *api.Interface {
	iface := &api.Interface{Name: a.Name, Mac: a.HardwareAddr.String(), Mtu: uint32(a.MTU)}
	for _, ad := range addrs {
		if ad.IPNet == nil || ad.Scope != unix.RT_SCOPE_UNIVERSE {
			continue
		}
		iface.Addresses = append(iface.Addresses, &api.IPAddress{Cidr: ad.IPNet.String()})
	}
	return iface
}

// routeFor converts a route through device dev; ok is false for routes
// the guest must not get: non-unicast ones, multipath ones (no single
// device), and IPv6 link-local and multicast prefixes, which the guest's
// kernel makes itself.
func routeFor(r netlink.Route, dev string) (_ *api.Route, ok bool) {
	if r.Type != unix.RTN_UNICAST || len(r.MultiPath) > 0 {
		return nil, false
	}
	out := &api.Route{Device: dev, Scope: uint32(r.Scope)}
	if r.Dst != nil {
		if ones, _ := r.Dst.Mask.Size(); ones > 0 {
			if r.Dst.IP.To4() == nil && (r.Dst.IP.IsLinkLocalUnicast() || r.Dst.IP.IsMulticast()) {
				return nil, false
			}
			out.Destination = r.Dst.String()
		}
	}
	if r.Gw != nil {
		out.Gateway = r.Gw.String()
	}
	if r.Src != nil {
		out.Source = r.Src.String()
	}
	return out, true
}

// neighborFor converts a permanent (static) neighbour entry on device
// dev; learnt entries are not copied.
func neighborFor(n netlink.Neigh, dev string) (_ *api.Neighbor, ok bool) {
	if n.State&netlink.NUD_PERMANENT == 0 || n.IP == nil || len(n.HardwareAddr) == 0 {
		return nil, false
	}
	if n.IP.IsMulticast() {
		return nil, false
	}
	return &api.Neighbor{Ip: n.IP.String(), Mac: n.HardwareAddr.String(), Device: dev}, true
}
