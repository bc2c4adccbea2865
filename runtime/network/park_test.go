package network

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/veil-runtime/veil/test/integration"
	"github.com/veil-runtime/veil/test/testnet"
)

// TestAttachParked: taps parked in one namespace, opened there as a VMM
// opens them, move into the pod's and are attached like Attach's; the
// request names each NIC by its parked MAC; a frame the VMM writes on
// the descriptor it opened before the move reaches the pod's namespace.
func TestAttachParked(t *testing.T) {
	integration.Require(t, integration.Root)
	cases := []struct {
		name    string
		parked  int
		podNICs int
		wantErr string
	}{
		{name: "one NIC", parked: 1, podNICs: 1},
		{name: "two NICs", parked: 2, podNICs: 2},
		{name: "pod has more interfaces than the VM NICs", parked: 1, podNICs: 2, wantErr: "has 2 pod interfaces, the warm VM 1 NICs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			park, pod, host := testnet.NetNS(t, "veil-park-"), testnet.NetNS(t, "veil-pod-"), testnet.NetNS(t, "veil-host-")
			for i := range tc.podNICs {
				podVeth(t, pod, host, []string{"eth0", "net1"}[i], []string{"vh0", "vh1"}[i], []string{mac0, mac1}[i], "1450")
			}
			ip(t, "-n", pod, "addr", "add", "10.213.9.2/24", "dev", "eth0")
			parked, err := Park(ctx, testnet.NetNSPath(park), tc.parked, 0)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, nic := range parked.NICs {
				mac, err := net.ParseMAC(nic.MAC)
				if err != nil || mac[0]&0x03 != 0x02 || seen[nic.MAC] {
					t.Errorf("parked MAC %q: want a unique unicast, locally administered address", nic.MAC)
				}
				seen[nic.MAC] = true
			}
			files, err := parked.OpenTaps(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				for _, f := range files {
					_ = f.Close()
				}
			}()
			if n, err := PodInterfaces(testnet.NetNSPath(pod)); err != nil || n != tc.podNICs {
				t.Fatalf("PodInterfaces = %d, %v; want %d", n, err, tc.podNICs)
			}

			e, err := AttachParked(ctx, testnet.NetNSPath(park), testnet.NetNSPath(pod), parked.NICs)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("AttachParked = %v, want an error with %q", err, tc.wantErr)
				}
				if links := ip(t, "-n", pod, "-br", "link"); strings.Contains(links, TapSuffix) {
					t.Errorf("a refused attach left taps in the pod:\n%s", links)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = e.Detach(ctx) })
			if links := ip(t, "-n", park, "-br", "link"); strings.Contains(links, TapSuffix) {
				t.Errorf("taps left in the parking namespace:\n%s", links)
			}
			h := testnet.NetlinkIn(t, pod)
			for i, nic := range e.NICs {
				if got := e.Request.Interfaces[i].GetNicMac(); got != parked.NICs[i].MAC {
					t.Errorf("interface %d nic_mac %q, want the parked %q", i, got, parked.NICs[i].MAC)
				}
				if e.Request.Interfaces[i].GetMac() != nic.MAC {
					t.Errorf("interface %d mac %q, want the pod's %q", i, e.Request.Interfaces[i].GetMac(), nic.MAC)
				}
				assertTap(t, h, nic.Tap, 1450)
				assertRedirect(t, h, nic.Interface, nic.Tap)
				assertRedirect(t, h, nic.Tap, nic.Interface)
			}
			// A frame from the "VMM" on the descriptor opened before the
			// move: the tap in the pod's namespace receives it.
			before := rxPackets(t, pod, e.NICs[0].Tap)
			frame := make([]byte, 10+60) // virtio-net header, then Ethernet
			copy(frame[10:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x08, 0x06})
			if _, err := files[0].Write(frame); err != nil {
				t.Fatalf("write on the moved tap's descriptor: %v", err)
			}
			if after := rxPackets(t, pod, e.NICs[0].Tap); after <= before {
				t.Errorf("the moved tap's rx_packets stayed %d", after)
			}
		})
	}
}

func rxPackets(t *testing.T, ns, dev string) uint64 {
	t.Helper()
	l, err := testnet.NetlinkIn(t, ns).LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Statistics.RxPackets
}
