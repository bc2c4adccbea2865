package kubernetes

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/veil-runtime/veil/test/harness"
	"github.com/veil-runtime/veil/test/integration"
	"golang.org/x/sys/unix"
)

// Version is the Kubernetes release the suite runs (make k8s builds it).
const Version = "v1.34.4"

const (
	// NodeName is the one node's name.
	NodeName = "veil-node"
	// nodeIP is the node's address: on the loopback device of the
	// harness's network namespace (nothing outside it sees it), but not a
	// loopback address, which the API server refuses to advertise.
	nodeIP = "10.99.0.1"
	// serviceCIDR is the cluster's service range (no Service is used; the
	// API server needs one).
	serviceCIDR = "10.0.0.0/24"
)

// BinDir is where `make k8s` puts kube-apiserver, kubelet, kubectl and
// etcd.
func BinDir() string {
	return filepath.Join(integration.CacheDir(), "kubernetes-"+Version, "bin")
}

// Cluster is a one-node Kubernetes (etcd, kube-apiserver, kubelet) on a
// harness containerd in CRI mode, inside the harness's network namespace:
// no controller manager or scheduler (pods name their node).
type Cluster struct {
	C *harness.Containerd
	// Dir holds the PKI, configs, etcd's data, the kubelet's root and pod
	// logs, and every log; Stop removes it.
	Dir string
	// KubeletRoot is the kubelet's --root-dir: pods' volumes live below
	// it, so the Veil config must allow it (volumes.allowed_host_paths).
	KubeletRoot string
	// PodLogs is the kubelet's podLogsDir.
	PodLogs string

	netns      string
	kubeconfig string
	adminToken string
	pki        *pki
	daemons    []*daemon
	host       *hostChanges
}

// NewDir makes the directory a cluster lives in; its KubeletRoot is known
// before Start, for the Veil config.
func NewDir() (string, error) { return os.MkdirTemp("", "veil-k8s-") }

// KubeletRootIn is the kubelet root of a cluster in dir.
func KubeletRootIn(dir string) string { return filepath.Join(dir, "kubelet") }

// Start brings the cluster up in dir (from NewDir) on c and waits until
// the node is Ready; on failure it tears down what it started.
func Start(ctx context.Context, c *harness.Containerd, dir string) (_ *Cluster, retErr error) {
	k := &Cluster{
		C: c, Dir: dir,
		KubeletRoot: KubeletRootIn(dir),
		PodLogs:     filepath.Join(dir, "pod-logs"),
		netns:       harness.NetNSPath(c.NetNS),
		kubeconfig:  filepath.Join(dir, "admin.kubeconfig"),
	}
	defer func() {
		if retErr != nil {
			_ = k.Stop(context.WithoutCancel(ctx))
		}
	}()
	for _, d := range []string{"pki", "etcd", "logs", "apiserver", k.KubeletRoot, k.PodLogs} {
		p := d
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, d)
		}
		if err := os.MkdirAll(p, 0o700); err != nil {
			return nil, err
		}
	}
	var err error
	if k.host, err = saveHost(ctx, c.NetNS); err != nil {
		return nil, err
	}
	if err := k.writePKI(); err != nil {
		return nil, fmt.Errorf("cluster PKI: %w", err)
	}
	if err := k.startEtcd(ctx); err != nil {
		return nil, err
	}
	if err := k.startAPIServer(ctx); err != nil {
		return nil, err
	}
	if err := k.startKubelet(ctx); err != nil {
		return nil, err
	}
	if _, err := k.Kubectl(ctx, "wait", "--for=condition=Ready", "node/"+NodeName, "--timeout=3m"); err != nil {
		return nil, fmt.Errorf("node %s not Ready: %w", NodeName, err)
	}
	if _, err := k.Apply(ctx, runtimeClasses); err != nil {
		return nil, fmt.Errorf("register RuntimeClasses: %w", err)
	}
	return k, nil
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// writePKI makes the CA, the serving and client certificates, the token
// file and the kubeconfigs.
func (k *Cluster) writePKI() error {
	p, err := newPKI(filepath.Join(k.Dir, "pki"))
	if err != nil {
		return err
	}
	k.pki = p
	ips := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(nodeIP), net.ParseIP("10.0.0.1")}
	if err := p.issue("apiserver", "kube-apiserver", nil, ips, []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"}); err != nil {
		return err
	}
	if err := p.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}, nil, nil); err != nil {
		return err
	}
	if err := p.issue("kubelet", "system:node:"+NodeName, []string{"system:nodes"}, ips[:2], []string{NodeName, "localhost"}); err != nil {
		return err
	}
	if err := p.serviceAccountKey(); err != nil {
		return err
	}
	k.adminToken = randomToken()
	nodeToken := randomToken()
	tokens := fmt.Sprintf("%s,admin,admin,\"system:masters\"\n%s,system:node:%s,system:node:%s,\"system:nodes\"\n",
		k.adminToken, nodeToken, NodeName, NodeName)
	if err := os.WriteFile(p.path("tokens.csv"), []byte(tokens), 0o600); err != nil {
		return err
	}
	if err := writeKubeconfig(k.kubeconfig, p.CA(), "admin", k.adminToken); err != nil {
		return err
	}
	return writeKubeconfig(k.kubeletKubeconfig(), p.CA(), "system:node:"+NodeName, nodeToken)
}

func (k *Cluster) kubeletKubeconfig() string { return filepath.Join(k.Dir, "kubelet.kubeconfig") }

// writeKubeconfig writes a kubeconfig (JSON, which kubeconfig files may
// be) for user with a bearer token.
func writeKubeconfig(path, ca, user, token string) error {
	cfg := map[string]any{
		"apiVersion":      "v1",
		"kind":            "Config",
		"clusters":        []any{map[string]any{"name": "veil", "cluster": map[string]any{"server": "https://127.0.0.1:6443", "certificate-authority": ca}}},
		"users":           []any{map[string]any{"name": user, "user": map[string]any{"token": token}}},
		"contexts":        []any{map[string]any{"name": "veil", "context": map[string]any{"cluster": "veil", "user": user, "namespace": "default"}}},
		"current-context": "veil",
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

func (k *Cluster) start(name string, args ...string) error {
	d, err := startDaemon(name, k.netns, filepath.Join(BinDir(), name), filepath.Join(k.Dir, "logs", name+".log"), args...)
	if err != nil {
		return err
	}
	k.daemons = append(k.daemons, d)
	return nil
}

// waitHTTP polls url from inside the network namespace until it answers
// 200, the daemon exits, or timeout.
func (k *Cluster) waitHTTP(ctx context.Context, name, url string, timeout time.Duration) error {
	d := k.daemons[len(k.daemons)-1]
	client := k.httpClient()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if err := d.exited(); err != nil {
			return err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+k.adminToken)
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("HTTP %s", resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not get ready at %s: %w (see %s)", name, url, last, d.log)
		case <-tick.C:
		}
	}
}

// httpClient reaches the cluster's endpoints inside the network
// namespace, trusting the cluster's CA.
func (k *Cluster) httpClient() *http.Client {
	pool := x509.NewCertPool()
	if b, err := os.ReadFile(k.pki.CA()); err == nil {
		pool.AppendCertsFromPEM(b)
	}
	return &http.Client{Transport: &http.Transport{
		DialContext:     k.C.DialContext,
		TLSClientConfig: &tls.Config{RootCAs: pool},
	}, Timeout: 5 * time.Second}
}

func (k *Cluster) startEtcd(ctx context.Context) error {
	err := k.start("etcd",
		"--name=veil", "--data-dir="+filepath.Join(k.Dir, "etcd"),
		"--listen-client-urls=http://127.0.0.1:2379", "--advertise-client-urls=http://127.0.0.1:2379",
		"--listen-peer-urls=http://127.0.0.1:2380", "--initial-advertise-peer-urls=http://127.0.0.1:2380",
		"--initial-cluster=veil=http://127.0.0.1:2380",
		// A test cluster's data is thrown away: no fsync on every write.
		"--unsafe-no-fsync")
	if err != nil {
		return err
	}
	return k.waitHTTP(ctx, "etcd", "http://127.0.0.1:2379/health", time.Minute)
}

func (k *Cluster) startAPIServer(ctx context.Context) error {
	p := k.pki
	err := k.start("kube-apiserver",
		"--etcd-servers=http://127.0.0.1:2379",
		"--bind-address=0.0.0.0", "--secure-port=6443", "--advertise-address="+nodeIP,
		"--cert-dir="+filepath.Join(k.Dir, "apiserver"),
		"--tls-cert-file="+p.path("apiserver.crt"), "--tls-private-key-file="+p.path("apiserver.key"),
		"--client-ca-file="+p.CA(),
		"--token-auth-file="+p.path("tokens.csv"),
		"--authorization-mode=Node,RBAC",
		"--kubelet-client-certificate="+p.path("apiserver-kubelet-client.crt"),
		"--kubelet-client-key="+p.path("apiserver-kubelet-client.key"),
		"--kubelet-certificate-authority="+p.CA(),
		"--kubelet-preferred-address-types=InternalIP",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+p.path("sa.pub"),
		"--service-account-signing-key-file="+p.path("sa.key"),
		"--service-cluster-ip-range="+serviceCIDR,
		// No controller manager creates the default ServiceAccount; pods
		// mount no token (automountServiceAccountToken: false).
		"--disable-admission-plugins=ServiceAccount",
		"--enable-admission-plugins=NodeRestriction,RuntimeClass",
		"--allow-privileged=false",
		"--profiling=false",
	)
	if err != nil {
		return err
	}
	return k.waitHTTP(ctx, "kube-apiserver", "https://127.0.0.1:6443/readyz", 3*time.Minute)
}

// kubeletConfig is the KubeletConfiguration (JSON) of the test node.
func (k *Cluster) kubeletConfig() map[string]any {
	p := k.pki
	return map[string]any{
		"apiVersion": "kubelet.config.k8s.io/v1beta1",
		"kind":       "KubeletConfiguration",
		// These hosts run cgroup v1 without systemd.
		"cgroupDriver":       "cgroupfs",
		"failSwapOn":         false,
		"address":            nodeIP,
		"port":               10250,
		"readOnlyPort":       0,
		"healthzBindAddress": "127.0.0.1",
		"healthzPort":        10248,
		"tlsCertFile":        p.path("kubelet.crt"),
		"tlsPrivateKeyFile":  p.path("kubelet.key"),
		"authentication": map[string]any{
			"anonymous": map[string]any{"enabled": false},
			"webhook":   map[string]any{"enabled": false},
			"x509":      map[string]any{"clientCAFile": p.CA()},
		},
		"authorization":            map[string]any{"mode": "AlwaysAllow"},
		"containerRuntimeEndpoint": k.C.CRIEndpoint(),
		"imageServiceEndpoint":     k.C.CRIEndpoint(),
		// VMs boot under TCG emulation here: a pod start takes seconds.
		"runtimeRequestTimeout": "10m",
		"podLogsDir":            k.PodLogs,
		"resolvConf":            "",
		"serializeImagePulls":   false,
		// Small test disks: evict nothing, collect no images.
		"evictionHard": map[string]string{
			"memory.available": "1Mi", "nodefs.available": "1%", "nodefs.inodesFree": "1%", "imagefs.available": "1%",
		},
		"imageGCHighThresholdPercent": 100,
		"imageGCLowThresholdPercent":  99,
		// ConfigMap and Secret updates reach pods within seconds.
		"syncFrequency": "5s",
		"configMapAndSecretChangeDetectionStrategy": "Watch",
		"nodeStatusUpdateFrequency":                 "5s",
		"fileCheckFrequency":                        "5s",
		"cgroupsPerQOS":                             true,
		"enforceNodeAllocatable":                    []string{"pods"},
		"protectKernelDefaults":                     false,
		"rotateCertificates":                        false,
		"serverTLSBootstrap":                        false,
		"shutdownGracePeriod":                       "0s",
		"localStorageCapacityIsolation":             true,
		"maxPods":                                   20,
	}
}

func (k *Cluster) startKubelet(ctx context.Context) error {
	b, err := json.MarshalIndent(k.kubeletConfig(), "", "  ")
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(k.Dir, "kubelet-config.json")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		return err
	}
	err = k.start("kubelet",
		"--config="+cfgPath,
		"--kubeconfig="+k.kubeletKubeconfig(),
		"--root-dir="+k.KubeletRoot,
		"--cert-dir="+filepath.Join(k.Dir, "pki"),
		"--hostname-override="+NodeName,
		"--node-ip="+nodeIP,
		"--v=2",
	)
	if err != nil {
		return err
	}
	return k.waitHTTP(ctx, "kubelet", "http://127.0.0.1:10248/healthz", 2*time.Minute)
}

// Kubectl runs kubectl as the cluster's admin inside the network
// namespace and returns its output; a failure carries the output.
func (k *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := k.KubectlCmd(ctx, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// KubectlCmd is the command for kubectl args (for streams and pty).
func (k *Cluster) KubectlCmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + k.netns, "--", filepath.Join(BinDir(), "kubectl"), "--kubeconfig=" + k.kubeconfig}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Apply applies a manifest (YAML) with kubectl.
func (k *Cluster) Apply(ctx context.Context, manifest string) (string, error) {
	cmd := k.KubectlCmd(ctx, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(manifest)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl apply: %w: %s", err, out)
	}
	return string(out), nil
}

// runtimeClasses are the two RuntimeClasses the suite runs pods with:
// veil with the pod overhead of its VM, and runc as the reference.
var runtimeClasses = `apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: veil
handler: veil
overhead:
  podFixed:
    memory: ` + OverheadMemory + `
    cpu: ` + OverheadCPU + `
---
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: runc
handler: runc
`

// The veil RuntimeClass's overhead: what the VM (QEMU under TCG here),
// virtiofsd, the vsock daemon and the guest kernel take beyond the
// containers' own limits.
const (
	OverheadMemory = "320Mi"
	OverheadCPU    = "250m"
)

// Stop deletes every pod (gracefully, as a user would), stops the kubelet,
// the API server and etcd, and puts the host back. Pods the kubelet did
// not get to remove are left to the harness's containerd Stop, which
// removes every sandbox through CRI; call Stop before it.
func (k *Cluster) Stop(ctx context.Context) error {
	var errs []error
	if len(k.daemons) == 3 && k.daemons[2].exited() == nil && k.daemons[1].exited() == nil {
		if _, err := k.Kubectl(ctx, "delete", "pods", "--all", "--wait=true", "--timeout=3m"); err != nil {
			errs = append(errs, err)
		}
	}
	for i := len(k.daemons) - 1; i >= 0; i-- {
		if err := k.daemons[i].stop(ctx, 30*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	k.daemons = nil
	if k.host != nil {
		if err := k.C.RemovePods(ctx); err != nil {
			errs = append(errs, err)
		}
		if err := k.host.restore(ctx, k.PodLogs); err != nil {
			errs = append(errs, err)
		}
		k.host = nil
	}
	if err := mount.UnmountRecursive(k.Dir, unix.MNT_DETACH); err != nil {
		errs = append(errs, fmt.Errorf("unmount %s: %w", k.Dir, err))
	}
	if err := os.RemoveAll(k.Dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
