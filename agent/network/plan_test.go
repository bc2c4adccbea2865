package network

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/veil-runtime/veil/agent/api"
)

// validRequest is a request parse accepts; cases break one thing in it.
func validRequest() *api.SetupNetworkRequest {
	return &api.SetupNetworkRequest{
		Interfaces: []*api.Interface{{Name: "eth0", Mac: "02:00:0a:d6:01:02", Mtu: 1450,
			Addresses: []*api.IPAddress{{Cidr: "10.214.1.2/24"}, {Cidr: "fd14:1::2/64"}}}},
		Routes: []*api.Route{
			{Gateway: "10.214.1.1", Device: "eth0"},
			{Destination: "10.214.1.0/24", Device: "eth0", Source: "10.214.1.2", Scope: 253},
			{Gateway: "fd14:1::1", Device: "eth0"},
		},
		Neighbors: []*api.Neighbor{{Ip: "10.214.1.1", Mac: "02:00:0a:d6:01:01", Device: "eth0"}},
		Dns:       &api.DNS{Servers: []string{"10.214.1.53"}, Searches: []string{"svc.local"}, Options: []string{"ndots:5"}},
	}
}

func TestParse(t *testing.T) {
	cases := []struct {
		name    string
		modify  func(r *api.SetupNetworkRequest)
		wantErr []string // substrings; none: valid
	}{
		{name: "valid", modify: func(r *api.SetupNetworkRequest) {}},
		{name: "empty request", modify: func(r *api.SetupNetworkRequest) { *r = api.SetupNetworkRequest{} }},
		{
			name:    "bad CIDR",
			modify:  func(r *api.SetupNetworkRequest) { r.Interfaces[0].Addresses[0].Cidr = "10.214.1.300/24" },
			wantErr: []string{`interface 0 ("eth0")`, `address "10.214.1.300/24"`},
		},
		{
			name:    "address without prefix length",
			modify:  func(r *api.SetupNetworkRequest) { r.Interfaces[0].Addresses[0].Cidr = "10.214.1.2" },
			wantErr: []string{`address "10.214.1.2": not an IP address with prefix length`},
		},
		{
			name:    "bad MAC",
			modify:  func(r *api.SetupNetworkRequest) { r.Interfaces[0].Mac = "02:00:zz" },
			wantErr: []string{`invalid MAC "02:00:zz"`},
		},
		{
			name:    "bad name",
			modify:  func(r *api.SetupNetworkRequest) { r.Interfaces[0].Name = "a-very-long-interface-name" },
			wantErr: []string{`invalid interface name "a-very-long-interface-name"`},
		},
		{
			name:    "MTU too small",
			modify:  func(r *api.SetupNetworkRequest) { r.Interfaces[0].Mtu = 40 },
			wantErr: []string{"MTU 40 below 68"},
		},
		{
			name: "same MAC twice",
			modify: func(r *api.SetupNetworkRequest) {
				r.Interfaces = append(r.Interfaces, &api.Interface{Name: "net1", Mac: "02:00:0a:d6:01:02"})
			},
			wantErr: []string{`interface "net1": MAC 02:00:0a:d6:01:02 already belongs to "eth0"`},
		},
		{
			name:    "route through an unknown device",
			modify:  func(r *api.SetupNetworkRequest) { r.Routes[0].Device = "eth1" },
			wantErr: []string{"route default via 10.214.1.1 dev eth1", `device "eth1" is not among the interfaces (eth0)`},
		},
		{
			name:    "bad route destination",
			modify:  func(r *api.SetupNetworkRequest) { r.Routes[1].Destination = "10.214.1/24" },
			wantErr: []string{`destination "10.214.1/24": not a CIDR`},
		},
		{
			name:    "gateway of the other family",
			modify:  func(r *api.SetupNetworkRequest) { r.Routes[1].Gateway = "fd14:1::1" },
			wantErr: []string{"route 10.214.1.0/24 via fd14:1::1 dev eth0", "mixes IPv4 and IPv6"},
		},
		{
			name:    "neighbour on an unknown device",
			modify:  func(r *api.SetupNetworkRequest) { r.Neighbors[0].Device = "net9" },
			wantErr: []string{`neighbour 10.214.1.1 (02:00:0a:d6:01:01) on "net9"`, "not among the interfaces"},
		},
		{
			name:    "bad neighbour IP",
			modify:  func(r *api.SetupNetworkRequest) { r.Neighbors[0].Ip = "gateway" },
			wantErr: []string{`IP "gateway": not an IP address`},
		},
		{
			name:    "DNS server not an address",
			modify:  func(r *api.SetupNetworkRequest) { r.Dns.Servers = []string{"dns.example"} },
			wantErr: []string{`DNS server "dns.example"`},
		},
		{
			name:    "DNS search with white space",
			modify:  func(r *api.SetupNetworkRequest) { r.Dns.Searches = []string{"a b"} },
			wantErr: []string{`"a b": empty or contains white space`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := validRequest()
			tc.modify(r)
			p, err := parse(r)
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				seenGW := false
				for _, rt := range p.routes {
					if rt.route.Gw != nil {
						seenGW = true
					} else if seenGW {
						t.Errorf("link route %s after a gateway route", rt.desc)
					}
					if rt.route.Dst == nil {
						t.Errorf("route %s without Dst", rt.desc)
					}
				}
				return
			}
			if err == nil {
				t.Fatal("parse succeeded")
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("error %q is not ErrInvalidArgument", err)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestParseDefaultRouteFamily(t *testing.T) {
	cases := []struct {
		name  string
		route *api.Route
		want  string
	}{
		{name: "IPv4 gateway", route: &api.Route{Gateway: "10.0.0.1", Device: "eth0"}, want: "0.0.0.0/0"},
		{name: "IPv6 gateway", route: &api.Route{Gateway: "fd00::1", Device: "eth0"}, want: "::/0"},
		{name: "device only", route: &api.Route{Device: "eth0", Scope: 253}, want: "0.0.0.0/0"},
		{name: "IPv6 source only", route: &api.Route{Device: "eth0", Source: "fd00::2"}, want: "::/0"},
		{name: "host bits masked", route: &api.Route{Destination: "10.1.2.3/16", Device: "eth0"}, want: "10.1.0.0/16"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rp, err := parseRoute(tc.route)
			if err != nil {
				t.Fatal(err)
			}
			if got := rp.route.Dst.String(); got != tc.want {
				t.Fatalf("Dst = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestResolvConf(t *testing.T) {
	cases := []struct {
		name string
		dns  *api.DNS
		want []string
	}{
		{
			name: "servers, searches and options",
			dns:  &api.DNS{Servers: []string{"10.0.0.53", "fd00::53"}, Searches: []string{"ns.svc.cluster.local", "svc.cluster.local"}, Options: []string{"ndots:5", "edns0"}},
			want: []string{"nameserver 10.0.0.53", "nameserver fd00::53", "search ns.svc.cluster.local svc.cluster.local", "options ndots:5 edns0"},
		},
		{
			name: "servers only",
			dns:  &api.DNS{Servers: []string{"10.0.0.53"}},
			want: []string{"nameserver 10.0.0.53"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var lines []string
			for _, l := range strings.Split(strings.TrimSpace(resolvConf(tc.dns)), "\n") {
				if !strings.HasPrefix(l, "#") {
					lines = append(lines, l)
				}
			}
			if strings.Join(lines, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("resolv.conf:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
