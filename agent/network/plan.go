package network

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/agent/api"
)

// minMTU is the smallest MTU IPv4 allows.
const minMTU = 68

// plan is a validated SetupNetworkRequest in netlink's terms.
type plan struct {
	ifaces []ifacePlan
	// routes lists directly connected routes first.
	routes []routePlan
	neighs []neighPlan
	dns    *api.DNS
}

type ifacePlan struct {
	name string
	mac  net.HardwareAddr
	// nicMAC is the address the NIC is found by: mac, or the warm VM
	// NIC's own (api.Interface.nic_mac), which configure replaces by mac.
	nicMAC net.HardwareAddr
	mtu    int // 0: keep
	addrs  []*netlink.Addr
}

// routePlan is a route whose LinkIndex is filled in once device is found.
type routePlan struct {
	route  netlink.Route
	device string
	desc   string
}

type neighPlan struct {
	neigh  netlink.Neigh
	device string
}

// invalid wraps a validation error as errdefs.ErrInvalidArgument.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), errdefs.ErrInvalidArgument)
}

// parse validates r and converts it; every error names the item at fault.
func parse(r *api.SetupNetworkRequest) (*plan, error) {
	p := &plan{dns: r.GetDns()}
	names := map[string]bool{}
	macs := map[string]string{}
	for i, in := range r.GetInterfaces() {
		ip, err := parseInterface(in)
		if err != nil {
			return nil, fmt.Errorf("interface %d (%q): %w", i, in.GetName(), err)
		}
		if names[ip.name] {
			return nil, invalid("interface %d: name %q given twice", i, ip.name)
		}
		if other, ok := macs[ip.mac.String()]; ok {
			return nil, invalid("interface %q: MAC %s already belongs to %q", ip.name, ip.mac, other)
		}
		if other, ok := macs[ip.nicMAC.String()]; ok && ip.nicMAC.String() != ip.mac.String() {
			return nil, invalid("interface %q: NIC MAC %s already belongs to %q", ip.name, ip.nicMAC, other)
		}
		names[ip.name] = true
		macs[ip.mac.String()] = ip.name
		macs[ip.nicMAC.String()] = ip.name
		p.ifaces = append(p.ifaces, ip)
	}
	known := func(dev string) error {
		if names[dev] {
			return nil
		}
		var list []string
		for _, ip := range p.ifaces {
			list = append(list, ip.name)
		}
		return invalid("device %q is not among the interfaces (%s)", dev, strings.Join(list, ", "))
	}
	for _, rt := range r.GetRoutes() {
		rp, err := parseRoute(rt)
		if err == nil {
			err = known(rt.GetDevice())
		}
		if err != nil {
			return nil, fmt.Errorf("route %s: %w", describeRoute(rt), err)
		}
		p.routes = append(p.routes, rp)
	}
	// Gateways must be reachable before routes through them are added.
	slices.SortStableFunc(p.routes, func(a, b routePlan) int {
		return boolInt(a.route.Gw != nil) - boolInt(b.route.Gw != nil)
	})
	for _, n := range r.GetNeighbors() {
		np, err := parseNeighbor(n)
		if err == nil {
			err = known(n.GetDevice())
		}
		if err != nil {
			return nil, fmt.Errorf("neighbour %s (%s) on %q: %w", n.GetIp(), n.GetMac(), n.GetDevice(), err)
		}
		p.neighs = append(p.neighs, np)
	}
	for _, s := range p.dns.GetServers() {
		if _, err := netip.ParseAddr(s); err != nil {
			return nil, invalid("DNS server %q: not an IP address", s)
		}
	}
	for _, s := range append(slices.Clone(p.dns.GetSearches()), p.dns.GetOptions()...) {
		if s == "" || strings.ContainsAny(s, " \t\n") {
			return nil, invalid("DNS search domain or option %q: empty or contains white space", s)
		}
	}
	return p, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func parseInterface(in *api.Interface) (ifacePlan, error) {
	ip := ifacePlan{name: in.GetName(), mtu: int(in.GetMtu())}
	if ip.name == "" || len(ip.name) >= unix.IFNAMSIZ || strings.ContainsAny(ip.name, "/: \t\n") || ip.name == "." || ip.name == ".." {
		return ip, invalid("invalid interface name %q", ip.name)
	}
	mac, err := net.ParseMAC(in.GetMac())
	if err != nil || len(mac) != 6 {
		return ip, invalid("invalid MAC %q", in.GetMac())
	}
	ip.mac, ip.nicMAC = mac, mac
	if in.GetNicMac() != "" {
		nic, err := net.ParseMAC(in.GetNicMac())
		if err != nil || len(nic) != 6 {
			return ip, invalid("invalid NIC MAC %q", in.GetNicMac())
		}
		ip.nicMAC = nic
	}
	if ip.mtu != 0 && ip.mtu < minMTU {
		return ip, invalid("MTU %d below %d", ip.mtu, minMTU)
	}
	for _, a := range in.GetAddresses() {
		ipn, err := parseCIDR(a.GetCidr())
		if err != nil {
			return ip, err
		}
		addr := &netlink.Addr{IPNet: ipn}
		if ipn.IP.To4() == nil {
			// The pod network checked the address already; duplicate
			// address detection would only delay its use.
			addr.Flags = unix.IFA_F_NODAD
		}
		ip.addrs = append(ip.addrs, addr)
	}
	return ip, nil
}

// parseCIDR parses an address with its prefix length, keeping the host
// part (10.0.0.5/24 stays 10.0.0.5, not 10.0.0.0).
func parseCIDR(s string) (*net.IPNet, error) {
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		return nil, invalid("address %q: not an IP address with prefix length", s)
	}
	return prefixNet(pfx), nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	bits := 128
	if p.Addr().Is4() {
		bits = 32
	}
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), bits)}
}

func parseRoute(rt *api.Route) (routePlan, error) {
	rp := routePlan{device: rt.GetDevice(), desc: describeRoute(rt)}
	r := &rp.route
	family := 0
	setFamily := func(what string, is4 bool) error {
		f := unix.AF_INET6
		if is4 {
			f = unix.AF_INET
		}
		if family != 0 && family != f {
			return invalid("%s mixes IPv4 and IPv6", what)
		}
		family = f
		return nil
	}
	if d := rt.GetDestination(); d != "" {
		pfx, err := netip.ParsePrefix(d)
		if err != nil {
			return rp, invalid("destination %q: not a CIDR", d)
		}
		r.Dst = prefixNet(pfx.Masked())
		family = unix.AF_INET6
		if pfx.Addr().Is4() {
			family = unix.AF_INET
		}
	}
	if g := rt.GetGateway(); g != "" {
		a, err := netip.ParseAddr(g)
		if err != nil {
			return rp, invalid("gateway %q: not an IP address", g)
		}
		if err := setFamily("gateway "+g, a.Is4()); err != nil {
			return rp, err
		}
		r.Gw = net.IP(a.AsSlice())
	}
	if s := rt.GetSource(); s != "" {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return rp, invalid("source %q: not an IP address", s)
		}
		if err := setFamily("source "+s, a.Is4()); err != nil {
			return rp, err
		}
		r.Src = net.IP(a.AsSlice())
	}
	if r.Dst == nil {
		// The default route of the family the gateway or source names.
		if family == unix.AF_INET6 {
			r.Dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
		} else {
			r.Dst = &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
		}
	}
	if rt.GetScope() > 255 {
		return rp, invalid("scope %d out of range", rt.GetScope())
	}
	r.Scope = netlink.Scope(rt.GetScope())
	return rp, nil
}

func describeRoute(rt *api.Route) string {
	s := rt.GetDestination()
	if s == "" {
		s = "default"
	}
	if rt.GetGateway() != "" {
		s += " via " + rt.GetGateway()
	}
	return s + " dev " + rt.GetDevice()
}

func parseNeighbor(n *api.Neighbor) (neighPlan, error) {
	a, err := netip.ParseAddr(n.GetIp())
	if err != nil {
		return neighPlan{}, invalid("IP %q: not an IP address", n.GetIp())
	}
	mac, err := net.ParseMAC(n.GetMac())
	if err != nil {
		return neighPlan{}, invalid("invalid MAC %q", n.GetMac())
	}
	family := unix.AF_INET6
	if a.Is4() {
		family = unix.AF_INET
	}
	return neighPlan{
		neigh: netlink.Neigh{
			Family:       family,
			State:        netlink.NUD_PERMANENT,
			IP:           net.IP(a.AsSlice()),
			HardwareAddr: mac,
		},
		device: n.GetDevice(),
	}, nil
}
