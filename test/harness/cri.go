package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/veil-runtime/veil/test/criimage"
)

// CRI runtime handler names the harness configures.
const (
	// HandlerRunc runs pods with runc (io.containerd.runc.v2, cgroupfs).
	HandlerRunc = "runc"
	// HandlerVeil runs pods in Veil VMs (io.containerd.veil.v2).
	HandlerVeil = "veil"
)

// CRIOptions turns on containerd's CRI plugin (see Options.CRI) with the
// runtime handlers HandlerRunc and HandlerVeil, bridge CNI networking and
// a private registry that mirrors criimage.Registries.
type CRIOptions struct {
	// Images are pushed to the private registry before containerd starts.
	// Nil means criimage.All (everything critest and the CRI tests pull).
	Images []criimage.Image
	// VeilConfig is the Veil config the veil handler's shim loads (runtime
	// option ConfigPath). Empty means $VEIL_CONFIG, else ConfigPath().
	VeilConfig string
	// Subnet is the pods' IPv4 subnet (host-local IPAM on a bridge, no
	// masquerade). Empty means 10.88.0.0/24; the bridge lives in the
	// harness's own network namespace, so instances never clash.
	Subnet string
}

// cniBridge is the pods' bridge in the harness's network namespace. The
// harness creates it before containerd starts (the bridge plugin would on
// the first pod and keep it), so the leak census sees only pods' links.
const cniBridge = "cni0"

// cniPlugins are the CNI plugins the conflist (and containerd's loopback
// setup) use; make setup installs them into <cache>/cni/bin.
var cniPlugins = []string{"bridge", "host-local", "loopback", "portmap"}

// criPlugins are the plugins disabled outside CRI mode. CRI mode runs NRI
// on a private socket (NRISocket).
var criPlugins = map[string]bool{
	"io.containerd.nri.v1.nri":                          true,
	"io.containerd.grpc.v1.cri":                         true,
	"io.containerd.cri.v1.images":                       true,
	"io.containerd.cri.v1.runtime":                      true,
	"io.containerd.podsandbox.controller.v1.podsandbox": true,
}

// CNIBinDir is where `make setup` installs the CNI plugins.
func CNIBinDir() string { return filepath.Join(CacheDir(), "cni", "bin") }

func (o *CRIOptions) subnet() string {
	if o.Subnet != "" {
		return o.Subnet
	}
	return "10.88.0.0/24"
}

func (o *CRIOptions) veilConfig() string {
	switch {
	case o.VeilConfig != "":
		return o.VeilConfig
	case os.Getenv("VEIL_CONFIG") != "":
		return os.Getenv("VEIL_CONFIG")
	}
	return ConfigPath()
}

// NRISocket is the NRI socket of a CRI-mode containerd (critest's
// -nri-socket).
func (c *Containerd) NRISocket() string { return filepath.Join(c.Dir, "nri.sock") }

// CRI mode's files under the harness directory.
func (c *Containerd) certsDir() string   { return filepath.Join(c.Dir, "certs.d") }
func (c *Containerd) cniConfDir() string { return filepath.Join(c.Dir, "cni", "net.d") }
func (c *Containerd) cniIPAMDir() string { return filepath.Join(c.Dir, "cni", "ipam") }

// criConfig renders the CRI plugins' part of containerd's config.
func (c *Containerd) criConfig() string {
	o := c.cri
	var b strings.Builder
	b.WriteString("[plugins.\"io.containerd.nri.v1.nri\"]\n")
	fmt.Fprintf(&b, "  socket_path = %q\n  plugin_path = %q\n  plugin_config_path = %q\n\n",
		c.NRISocket(), filepath.Join(c.Dir, "nri", "plugins"), filepath.Join(c.Dir, "nri", "conf.d"))
	b.WriteString("[plugins.\"io.containerd.grpc.v1.cri\"]\n")
	b.WriteString("  stream_server_address = \"127.0.0.1\"\n  stream_server_port = \"0\"\n\n")
	b.WriteString("[plugins.\"io.containerd.cri.v1.images\"]\n")
	b.WriteString("  [plugins.\"io.containerd.cri.v1.images\".pinned_images]\n")
	fmt.Fprintf(&b, "    sandbox = %q\n", criimage.Pause)
	b.WriteString("  [plugins.\"io.containerd.cri.v1.images\".registry]\n")
	fmt.Fprintf(&b, "    config_path = %q\n\n", c.certsDir())
	b.WriteString("[plugins.\"io.containerd.cri.v1.runtime\"]\n")
	// root here lacks CAP_SYS_RESOURCE: without this every sandbox fails
	// with "oom_score_adj: permission denied".
	b.WriteString("  restrict_oom_score_adj = true\n")
	b.WriteString("  netns_mounts_under_state_dir = true\n")
	b.WriteString("  [plugins.\"io.containerd.cri.v1.runtime\".cni]\n")
	fmt.Fprintf(&b, "    bin_dirs = [%q]\n    conf_dir = %q\n", CNIBinDir(), c.cniConfDir())
	b.WriteString("  [plugins.\"io.containerd.cri.v1.runtime\".containerd]\n")
	fmt.Fprintf(&b, "    default_runtime_name = %q\n", HandlerRunc)
	rt := "  [plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes."
	fmt.Fprintf(&b, "%s%s]\n    runtime_type = \"io.containerd.runc.v2\"\n    sandboxer = \"podsandbox\"\n", rt, HandlerRunc)
	fmt.Fprintf(&b, "%s%s.options]\n    SystemdCgroup = false\n", rt, HandlerRunc)
	fmt.Fprintf(&b, "%s%s]\n    runtime_type = \"io.containerd.veil.v2\"\n    sandboxer = \"podsandbox\"\n", rt, HandlerVeil)
	b.WriteString("    pod_annotations = [\"io.veil.*\"]\n")
	fmt.Fprintf(&b, "%s%s.options]\n    ConfigPath = %q\n", rt, HandlerVeil, o.veilConfig())
	return b.String()
}

// cniConflist is the pod network: a bridge with host-local IPAM (state
// under the harness directory), hostPort mappings by portmap.
func (c *Containerd) cniConflist() ([]byte, error) {
	return json.MarshalIndent(map[string]any{
		"cniVersion": "1.0.0",
		"name":       "veil-cri",
		"plugins": []map[string]any{
			{
				"type":        "bridge",
				"bridge":      cniBridge,
				"isGateway":   true,
				"ipMasq":      false,
				"hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": c.cri.subnet()}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
					"dataDir": c.cniIPAMDir(),
				},
			},
			{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}, "", "  ")
}

// setupCRI prepares what the CRI plugin needs before containerd starts:
// the registry (serving inside the netns, with the images pushed), its
// hosts.toml mirrors, the CNI config, and the netns' sysctls. It returns
// the undo steps for the caller's rollback.
func (c *Containerd) setupCRI(ctx context.Context) (undo []func() error, err error) {
	for _, p := range cniPlugins {
		if _, err := os.Stat(filepath.Join(CNIBinDir(), p)); err != nil {
			return nil, fmt.Errorf("CNI plugin %s missing from %s: run 'make setup': %w", p, CNIBinDir(), err)
		}
	}
	ns := netnsPath(c.NetNS)
	// Pods reach hostPorts on 127.0.0.1 (portmap) and each other through
	// the bridge.
	if err := writeSysctls(ns, map[string]string{
		"net/ipv4/ip_forward":                  "1",
		"net/ipv4/conf/all/route_localnet":     "1",
		"net/ipv4/conf/default/route_localnet": "1",
	}); err != nil {
		return nil, err
	}
	if err := run(ctx, "ip", "-n", c.NetNS, "link", "add", cniBridge, "type", "bridge"); err != nil {
		return nil, fmt.Errorf("create the pods' bridge: %w", err)
	}
	images := c.cri.Images
	if images == nil {
		if images, err = criimage.All(CacheDir()); err != nil {
			return nil, err
		}
	}
	reg, err := startRegistry(ns)
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() error { return reg.Close(context.WithoutCancel(ctx)) })
	c.Registry = reg
	for _, img := range images {
		if err := reg.Push(ctx, img.Ref, img.Image); err != nil {
			return undo, err
		}
	}
	for _, host := range criimage.Registries {
		d := filepath.Join(c.certsDir(), host)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return undo, fmt.Errorf("create %s: %w", d, err)
		}
		if err := os.WriteFile(filepath.Join(d, "hosts.toml"), []byte(reg.mirrorHostsTOML(host)), 0o644); err != nil {
			return undo, fmt.Errorf("write hosts.toml for %s: %w", host, err)
		}
	}
	conflist, err := c.cniConflist()
	if err != nil {
		return undo, fmt.Errorf("marshal CNI config: %w", err)
	}
	if err := os.MkdirAll(c.cniConfDir(), 0o755); err != nil {
		return undo, fmt.Errorf("create %s: %w", c.cniConfDir(), err)
	}
	if err := os.WriteFile(filepath.Join(c.cniConfDir(), "10-veil-cri.conflist"), conflist, 0o644); err != nil {
		return undo, fmt.Errorf("write CNI config: %w", err)
	}
	return undo, nil
}
