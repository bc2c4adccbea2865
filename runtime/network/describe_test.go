package network

import (
	"net"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/veil-runtime/veil/agent/api"
)

func cidr(t *testing.T, s string) *net.IPNet {
	t.Helper()
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	n.IP = ip
	return n
}

func TestRouteFor(t *testing.T) {
	zero := &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}
	cases := []struct {
		name  string
		route netlink.Route
		want  *api.Route // nil: skipped
	}{
		{
			name:  "default route via gateway",
			route: netlink.Route{Type: unix.RTN_UNICAST, Dst: zero, Gw: net.ParseIP("10.0.0.1")},
			want:  &api.Route{Gateway: "10.0.0.1", Device: "eth0"},
		},
		{
			name:  "default route without destination",
			route: netlink.Route{Type: unix.RTN_UNICAST, Gw: net.ParseIP("fd00::1")},
			want:  &api.Route{Gateway: "fd00::1", Device: "eth0"},
		},
		{
			name:  "link route with source",
			route: netlink.Route{Type: unix.RTN_UNICAST, Dst: cidr(t, "10.0.0.0/24"), Src: net.ParseIP("10.0.0.5"), Scope: netlink.SCOPE_LINK},
			want:  &api.Route{Destination: "10.0.0.0/24", Source: "10.0.0.5", Device: "eth0", Scope: unix.RT_SCOPE_LINK},
		},
		{
			name:  "IPv6 link-local prefix skipped",
			route: netlink.Route{Type: unix.RTN_UNICAST, Dst: cidr(t, "fe80::/64")},
		},
		{
			name:  "IPv6 multicast skipped",
			route: netlink.Route{Type: unix.RTN_UNICAST, Dst: cidr(t, "ff00::/8")},
		},
		{
			name:  "blackhole skipped",
			route: netlink.Route{Type: unix.RTN_BLACKHOLE, Dst: cidr(t, "10.1.0.0/16")},
		},
		{
			name:  "multipath skipped",
			route: netlink.Route{Type: unix.RTN_UNICAST, Dst: cidr(t, "10.2.0.0/16"), MultiPath: []*netlink.NexthopInfo{{LinkIndex: 2}}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := routeFor(tc.route, "eth0")
			if ok != (tc.want != nil) || (ok && !proto.Equal(got, tc.want)) {
				t.Fatalf("routeFor = %v, %v; want %v", got, ok, tc.want)
			}
		})
	}
}

func TestNeighborFor(t *testing.T) {
	mac, _ := net.ParseMAC("02:00:00:00:00:09")
	cases := []struct {
		name  string
		neigh netlink.Neigh
		want  *api.Neighbor
	}{
		{
			name:  "permanent",
			neigh: netlink.Neigh{State: netlink.NUD_PERMANENT, IP: net.ParseIP("10.0.0.9"), HardwareAddr: mac},
			want:  &api.Neighbor{Ip: "10.0.0.9", Mac: "02:00:00:00:00:09", Device: "eth0"},
		},
		{name: "learnt", neigh: netlink.Neigh{State: netlink.NUD_REACHABLE, IP: net.ParseIP("10.0.0.9"), HardwareAddr: mac}},
		{name: "without address", neigh: netlink.Neigh{State: netlink.NUD_PERMANENT, IP: net.ParseIP("10.0.0.9")}},
		{name: "multicast", neigh: netlink.Neigh{State: netlink.NUD_PERMANENT, IP: net.ParseIP("ff02::1"), HardwareAddr: mac}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := neighborFor(tc.neigh, "eth0")
			if ok != (tc.want != nil) || (ok && !proto.Equal(got, tc.want)) {
				t.Fatalf("neighborFor = %v, %v; want %v", got, ok, tc.want)
			}
		})
	}
}

func TestInterfaceFor(t *testing.T) {
	mac, _ := net.ParseMAC("02:00:00:00:00:02")
	attrs := &netlink.LinkAttrs{Name: "eth0", HardwareAddr: mac, MTU: 1450}
	addrs := []netlink.Addr{
		{IPNet: cidr(t, "10.0.0.2/24"), Scope: unix.RT_SCOPE_UNIVERSE},
		{IPNet: cidr(t, "fe80::2/64"), Scope: unix.RT_SCOPE_LINK},
		{IPNet: cidr(t, "fd00::2/64"), Scope: unix.RT_SCOPE_UNIVERSE},
	}
	want := &api.Interface{Name: "eth0", Mac: "02:00:00:00:00:02", Mtu: 1450,
		Addresses: []*api.IPAddress{{Cidr: "10.0.0.2/24"}, {Cidr: "fd00::2/64"}}}
	if got := interfaceFor(attrs, addrs); !proto.Equal(got, want) {
		t.Fatalf("interfaceFor = %v, want %v", got, want)
	}
}

func TestPodLinks(t *testing.T) {
	mac, _ := net.ParseMAC("02:00:00:00:00:02")
	ether := func(name string) netlink.LinkAttrs {
		return netlink.LinkAttrs{Name: name, EncapType: "ether", HardwareAddr: mac}
	}
	lo := netlink.LinkAttrs{Name: "lo", EncapType: "loopback", Flags: net.FlagLoopback, HardwareAddr: make(net.HardwareAddr, 6)}
	links := []netlink.Link{
		&netlink.Device{LinkAttrs: lo},
		&netlink.Veth{LinkAttrs: ether("eth0")},
		&netlink.Tuntap{LinkAttrs: ether("tap0" + TapSuffix)},
		&netlink.Sittun{LinkAttrs: netlink.LinkAttrs{Name: "sit0", EncapType: "sit"}},
		&netlink.Dummy{LinkAttrs: ether("net1")},
	}
	var got []string
	for _, l := range podLinks(links) {
		got = append(got, l.Attrs().Name)
	}
	if want := []string{"eth0", "net1"}; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("podLinks = %v, want %v", got, want)
	}
}
