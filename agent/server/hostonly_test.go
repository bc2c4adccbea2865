package server

import (
	"net"
	"testing"

	"github.com/mdlayher/vsock"
)

func TestFromHost(t *testing.T) {
	cases := []struct {
		name string
		addr net.Addr
		want bool
	}{
		{"host", &vsock.Addr{ContextID: vsock.Host, Port: 50000}, true},
		{"local loopback", &vsock.Addr{ContextID: vsock.Local, Port: 50000}, false},
		{"guest itself", &vsock.Addr{ContextID: 3, Port: 50000}, false},
		{"hypervisor", &vsock.Addr{ContextID: vsock.Hypervisor, Port: 1}, false},
		{"not vsock", &net.UnixAddr{Name: "/x", Net: "unix"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := fromHost(tc.addr); got != tc.want {
				t.Fatalf("fromHost(%v) = %v, want %v", tc.addr, got, tc.want)
			}
		})
	}
}
