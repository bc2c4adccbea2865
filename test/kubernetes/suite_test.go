package kubernetes

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/test/cri"
	"github.com/veil-runtime/veil/test/integration"
)

// suite is one cluster shared by every case.
type suite struct {
	ctx context.Context
	k   *Cluster
	f   *cri.Fixture
	// hostPaths is a directory pods may mount with hostPath (allowed in
	// the Veil config, as the kubelet's root is).
	hostPaths string
}

// classes are the runtime classes every case runs with: runc, the
// reference, then veil.
var classes = []string{"runc", "veil"}

// kcase is one behaviour checked on each runtime class.
type kcase struct {
	name string
	run  func(t *testing.T, s *suite, class string)
}

// TestKubernetes runs a one-node Kubernetes (etcd, kube-apiserver and a
// kubelet on the harness's containerd) and checks, with kubectl as a user
// would, what a kubelet asks of a runtime, on runc and on Veil.
func TestKubernetes(t *testing.T) {
	integration.Require(t, integration.Root, integration.VM, integration.Cgroups,
		integration.File(filepath.Join(BinDir(), "kubelet"), "run make k8s"))
	s := newSuite(t)
	for _, class := range classes {
		t.Run(class, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					tc.run(t, s, class)
				})
			}
		})
	}
}

func newSuite(t *testing.T) *suite {
	dir, err := NewDir()
	if err != nil {
		t.Fatal(err)
	}
	hostPaths := filepath.Join(dir, "hostpath")
	if err := os.MkdirAll(hostPaths, 0o755); err != nil {
		t.Fatal(err)
	}
	f := cri.NewFixture(t, nil, func(c *config.Config) {
		c.Volumes.AllowedHostPaths = []string{KubeletRootIn(dir), hostPaths}
	})
	ctx, cancel := context.WithTimeout(f.Ctx, 5*time.Minute)
	defer cancel()
	k, err := Start(ctx, f.C, dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		t.Fatalf("start the cluster: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, d := range []string{"kubelet", "kube-apiserver"} {
				b, _ := os.ReadFile(filepath.Join(dir, "logs", d+".log"))
				t.Logf("%s log (tail):\n%s", d, tail(string(b), 60))
			}
		}
		if err := k.Stop(context.WithoutCancel(f.Ctx)); err != nil {
			t.Errorf("stop the cluster: %v", err)
		}
	})
	return &suite{ctx: f.Ctx, k: k, f: f, hostPaths: hostPaths}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// apply renders and applies a manifest for class, failing the test on
// error, and deletes what it made when the test ends.
func (s *suite) apply(t *testing.T, tmpl, class string, extra map[string]string) {
	t.Helper()
	m, err := Manifest(tmpl, class, extra)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.k.Apply(s.ctx, m); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd := s.k.KubectlCmd(context.WithoutCancel(s.ctx), "delete", "--ignore-not-found", "--wait=true", "--timeout=3m", "-f", "-")
		cmd.Stdin = strings.NewReader(m)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("delete: %v: %s", err, out)
		}
	})
}

// kubectl runs kubectl, failing the test on error.
func (s *suite) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := s.k.Kubectl(s.ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (s *suite) waitReady(t *testing.T, name string) *Pod {
	t.Helper()
	if err := s.k.WaitReady(s.ctx, name); err != nil {
		if d, derr := s.k.Kubectl(s.ctx, "describe", "pod", name); derr == nil {
			t.Logf("%s", d)
		}
		t.Fatal(err)
	}
	p, err := s.k.GetPod(s.ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// hostBootID is the host kernel's boot id: a runc container sees it, a
// Veil container its VM's own.
func hostBootID(t *testing.T) string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// eventually polls check (each poll runs kubectl: twice a second is
// enough) until it succeeds or d passes.
func eventually(t *testing.T, what string, d time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, d, err)
		}
		<-tick.C
	}
}

// cases run in this order on each runtime class.
var cases = []kcase{
	{"running with overhead in the pod cgroup", testOverhead},
	{"logs exec and port-forward", testStreaming},
	{"liveness probe restarts in the same VM", testLiveness},
	{"startup and readiness probes gate Ready", testProbes},
	{"secret configmap downward-API and emptyDir volumes", testVolumes},
	{"graceful deletion with preStop", testGracefulDeletion},
	{"grace period ends a container that ignores SIGTERM", testGracePeriod},
	{"init container runs first in the same VM", testInitContainer},
	{"hostNetwork", testHostNetwork},
}

// podHead starts every pod manifest: named <Name>-<class>, on the node,
// with the runtime class, without a service account token.
const podHead = `apiVersion: v1
kind: Pod
metadata:
  name: {{.Name}}-{{.Class}}
  labels:
    app: {{.Name}}
spec:
  runtimeClassName: {{.Class}}
  nodeName: {{.Node}}
  automountServiceAccountToken: false
  enableServiceLinks: false
  dnsPolicy: Default
`

func name(n, class string) string { return n + "-" + class }
