package cri

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/veil-runtime/veil/test/harness"
	"github.com/veil-runtime/veil/test/integration"
)

// httpServer is a container script that serves body on port with
// busybox httpd.
func httpServer(body string, port int) string {
	return fmt.Sprintf(`mkdir -p /www && echo %s > /www/index.html && exec httpd -f -p %d -h /www`, body, port)
}

// podIP returns a pod's IPv4 address.
func (f *fixture) podIP(t testing.TB, pod string) string {
	t.Helper()
	resp, err := f.cl.Runtime.PodSandboxStatus(f.ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod})
	if err != nil {
		t.Fatal(err)
	}
	ip := resp.GetStatus().GetNetwork().GetIp()
	if net.ParseIP(ip) == nil {
		t.Fatalf("pod %s has no IP: %v", pod, resp.GetStatus().GetNetwork())
	}
	return ip
}

// get fetches url from containerd's network namespace (the host side of
// the pod network).
func (f *fixture) get(ctx context.Context, url string) (string, error) {
	client := &http.Client{Transport: &http.Transport{DialContext: f.c.DialContext, DisableKeepAlives: true}, Timeout: 5 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), nil
}

// TestPodNetwork checks pod networking through CNI (bridge, host-local,
// portmap) and Veil's tap: a veil pod serves HTTP to the host side of the
// pod network, on its pod IP and on a hostPort; it reaches a server in
// another network namespace (the host side's); and two veil pods reach
// each other. Every address lives in namespaces the harness created.
func TestPodNetwork(t *testing.T) { modes(t, testPodNetwork) }

func testPodNetwork(t *testing.T, f *fixture) {
	serverCfg := f.podConfig("web")
	serverCfg.PortMappings = []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 8080, HostPort: 18080, HostIp: "127.0.0.1"}}
	server := f.runPod(t, harness.HandlerVeil, serverCfg)
	f.startContainer(t, server, serverCfg, shContainer("httpd", httpServer("hello-from-veil", 8080)))
	serverIP := f.podIP(t, server)

	clientCfg := f.podConfig("client")
	client := f.runPod(t, harness.HandlerVeil, clientCfg)
	clientCtr := f.startContainer(t, client, clientCfg, shContainer("sh", `while true; do sleep 1; done`))

	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"host side reaches the pod IP", func(t *testing.T) {
			integration.Eventually(t, "GET pod IP", 30*time.Second, func() error {
				body, err := f.get(f.ctx, "http://"+net.JoinHostPort(serverIP, "8080")+"/")
				if err == nil && strings.TrimSpace(body) != "hello-from-veil" {
					return fmt.Errorf("body %q", body)
				}
				return err
			})
		}},
		{"host side reaches the hostPort", func(t *testing.T) {
			integration.Eventually(t, "GET hostPort", 30*time.Second, func() error {
				body, err := f.get(f.ctx, "http://127.0.0.1:18080/")
				if err == nil && strings.TrimSpace(body) != "hello-from-veil" {
					return fmt.Errorf("body %q", body)
				}
				return err
			})
		}},
		{"pod reaches a server in another namespace", func(t *testing.T) {
			// A server in containerd's namespace, on the bridge's gateway
			// address: the host side of the pod network.
			gw := gateway(t, serverIP)
			l, err := f.c.Listen(f.ctx, "tcp", net.JoinHostPort(gw, "0"))
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "hello-from-host-side\n") })}
			go func() { _ = srv.Serve(l) }()
			t.Cleanup(func() { _ = srv.Close() })
			out := httpGetIn(t, f, clientCtr, l.Addr().String())
			if !strings.Contains(out, "hello-from-host-side") {
				t.Fatalf("wget: %q", out)
			}
		}},
		{"two pods reach each other", func(t *testing.T) {
			out := httpGetIn(t, f, clientCtr, net.JoinHostPort(serverIP, "8080"))
			if !strings.Contains(out, "hello-from-veil") {
				t.Fatalf("wget: %q", out)
			}
		}},
		{"the guest has the pod's address and default route", func(t *testing.T) {
			addr := f.mustExec(t, clientCtr, "ip", "-4", "addr", "show", "eth0")
			if ip := f.podIP(t, client); !strings.Contains(addr, ip+"/") {
				t.Fatalf("eth0 in the guest lacks %s: %s", ip, addr)
			}
			if route := f.mustExec(t, clientCtr, "ip", "route"); !strings.Contains(route, "default via") {
				t.Fatalf("no default route: %s", route)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, tc.run)
	}
}

// gateway is the first address of ip's /24, the bridge's own address.
func gateway(t testing.TB, ip string) string {
	t.Helper()
	p := net.ParseIP(ip).To4()
	if p == nil {
		t.Fatalf("not IPv4: %s", ip)
	}
	return net.IPv4(p[0], p[1], p[2], 1).String()
}

// httpGetIn fetches http://addr/ from inside a container with busybox nc
// (the image's busybox wget crashes under emulation here) and returns the
// whole response.
func httpGetIn(t testing.TB, f *fixture, id, addr string) string {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`printf 'GET / HTTP/1.0\r\nHost: %s\r\n\r\n' | nc -w 10 %s %s`, host, host, port)
	return f.mustExec(t, id, "sh", "-c", script)
}
