package agent

import (
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/sandbox"
	"github.com/veil-runtime/veil/test/harness"
)

// Pod network of TestNetwork: every address lives only in namespaces the
// test creates.
const (
	podMAC  = "02:00:0a:d8:00:02"
	podIP   = "10.216.0.2"
	peerIP  = "10.216.0.1"
	podCIDR = podIP + "/24"
	dnsIP   = "10.216.0.53"
	webPort = "8080"
)

// TestNetwork boots a sandbox in a pod network namespace shaped like
// CNI's (a veth eth0 whose peer is in a second namespace, standing in for
// the host side), then checks the guest's configuration, traffic both
// ways between the guest and the peer, and that Stop leaves the pod
// namespace without taps or qdiscs.
func TestNetwork(t *testing.T) {
	cfg := harness.SandboxConfig(t)
	pod, peer := harness.NetNS(t, "veil-vmpod-"), harness.NetNS(t, "veil-vmpeer-")
	ip(t, "-n", peer, "link", "add", "vpeer", "type", "veth", "peer", "name", "eth0", "netns", pod, "address", podMAC)
	ip(t, "-n", peer, "addr", "add", peerIP+"/24", "dev", "vpeer")
	ip(t, "-n", peer, "link", "set", "vpeer", "up")
	ip(t, "-n", pod, "addr", "add", podCIDR, "dev", "eth0")
	ip(t, "-n", pod, "link", "set", "eth0", "up")
	ip(t, "-n", pod, "route", "add", "default", "via", peerIP)
	podBefore := podState(t, pod)

	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	s, err := sandbox.Start(ctx, "net-test", cfg, sandbox.Options{
		Hostname:  "net-test",
		NetNSPath: harness.NetNSPath(pod),
		DNS:       &api.DNS{Servers: []string{dnsIP}, Searches: []string{"veil.test"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = s.Stop(context.Background())
		}
	})

	t.Run("guest configuration", func(t *testing.T) {
		cases := []struct {
			name string
			argv []string
			want []string
		}{
			{name: "interface", argv: []string{"ip", "addr", "show", "eth0"}, want: []string{"link/ether " + podMAC, "inet " + podCIDR, "UP,LOWER_UP"}},
			{name: "routes", argv: []string{"ip", "route"}, want: []string{"default via " + peerIP + " dev eth0", "10.216.0.0/24 dev eth0"}},
			{name: "loopback", argv: []string{"ip", "addr", "show", "lo"}, want: []string{"inet 127.0.0.1/8", "UP"}},
			{name: "resolver", argv: []string{"cat", "/etc/resolv.conf"}, want: []string{"nameserver " + dnsIP, "search veil.test"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				out := guestRun(t, s, tc.argv...)
				for _, w := range tc.want {
					if !strings.Contains(out, w) {
						t.Errorf("%q lacks %q:\n%s", tc.argv, w, out)
					}
				}
			})
		}
	})

	t.Run("guest to peer", func(t *testing.T) {
		guestRun(t, s, "busybox", "ping", "-c", "1", "-W", "10", peerIP)
	})

	t.Run("peer to guest", func(t *testing.T) {
		// httpd binds before it daemonizes, so it serves once DebugExec
		// returned.
		guestRun(t, s, "sh", "-c", "mkdir -p /tmp/www && echo hello-from-guest > /tmp/www/index.html && busybox httpd -p "+webPort+" -h /tmp/www")
		rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer rcancel()
		client := &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return dialIn(ctx, peer, network, addr)
			},
		}}
		req, err := http.NewRequestWithContext(rctx, http.MethodGet, "http://"+podIP+":"+webPort+"/index.html", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET from the peer: %v\nguest:\n%s", err, guestLinks(s))
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "hello-from-guest" {
			t.Fatalf("GET from the peer: %s, %q, %v", resp.Status, body, err)
		}
		// The pod network learnt the pod interface's MAC from the guest.
		if n := ip(t, "-n", peer, "neigh", "show", podIP); !strings.Contains(n, podMAC) {
			t.Errorf("peer's neighbour entry for %s lacks %s: %q", podIP, podMAC, n)
		}
	})

	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	stopped = true
	if err := s.Stop(sctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if after := podState(t, pod); after != podBefore {
		t.Errorf("pod namespace differs after Stop:\nbefore:\n%s\nafter:\n%s", podBefore, after)
	}
}

// podState lists the links and qdiscs of namespace ns.
func podState(t *testing.T, ns string) string {
	t.Helper()
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(ip(t, "-n", ns, "-br", "link")), "\n") {
		b.WriteString(strings.Fields(l)[0] + "\n")
	}
	return b.String() + tcCmd(t, "-n", ns, "qdisc", "show")
}

// dialIn connects from inside the named network namespace: the socket is
// made on a thread switched into it, and stays there once the thread
// switches back.
func dialIn(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer func() { _ = orig.Close() }()
		target, err := netns.GetFromName(ns)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer func() { _ = target.Close() }()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, network, addr)
		if serr := netns.Set(orig); serr != nil {
			// Stay locked: the thread ends with this goroutine.
			if conn != nil {
				_ = conn.Close()
			}
			ch <- result{err: serr}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{conn, err}
	}()
	r := <-ch
	return r.conn, r.err
}

// guestRun runs argv in the guest through DebugExec and returns its
// stdout; a failure or a non-zero exit fails t.
func guestRun(t *testing.T, s *sandbox.Sandbox, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := s.Agent().DebugExec(ctx, &api.DebugExecRequest{Argv: argv, TimeoutMs: 30000})
	if err != nil {
		t.Fatalf("DebugExec %q: %v", argv, err)
	}
	if r.ExitStatus != 0 {
		t.Fatalf("%q exited %d\nstdout: %s\nstderr: %s\nguest links:\n%s", argv, r.ExitStatus, r.Stdout, r.Stderr, guestLinks(s))
	}
	return string(r.Stdout)
}

// guestLinks is the guest's `ip addr` and `ip route`, for failure messages.
func guestLinks(s *sandbox.Sandbox) string {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := s.Agent().DebugExec(ctx, &api.DebugExecRequest{Argv: []string{"sh", "-c", "ip addr; ip route; ip neigh"}})
	if err != nil {
		return err.Error()
	}
	return string(r.Stdout)
}

func ip(t *testing.T, args ...string) string { t.Helper(); return harness.MustRun(t, "ip", args...) }

func tcCmd(t *testing.T, args ...string) string { t.Helper(); return harness.MustRun(t, "tc", args...) }
