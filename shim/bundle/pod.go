package bundle

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// CRI annotations that say what a container is within its pod.
const (
	annotationContainerType = "io.kubernetes.cri.container-type"
	annotationSandboxID     = "io.kubernetes.cri.sandbox-id"
	containerTypeContainer  = "container"
	containerTypeSandbox    = "sandbox"

	// The pod's names, which CRI puts on every container of the pod.
	annotationSandboxName      = "io.kubernetes.cri.sandbox-name"
	annotationSandboxNamespace = "io.kubernetes.cri.sandbox-namespace"
	annotationSandboxUID       = "io.kubernetes.cri.sandbox-uid"
)

// PodOf names the Kubernetes pod from a container's CRI annotations; it
// is zero for a container CRI did not make.
func PodOf(annotations map[string]string) statedir.Pod {
	return statedir.Pod{
		Name:      annotations[annotationSandboxName],
		Namespace: annotations[annotationSandboxNamespace],
		UID:       annotations[annotationSandboxUID],
	}
}

// CheckPodNamespaces refuses (InvalidArgument: an Unimplemented answer
// to Create would make containerd retry with an older task API) a CRI pod
// that asks to share the host's network or IPC namespace (hostNetwork, hostIPC): a VM has its own
// kernel, so it cannot, and running it isolated would silently give the
// pod something else than it asked for. The pod's sandbox container
// tells: CRI leaves those namespaces out of its spec for such pods.
func CheckPodNamespaces(bs *Spec) error {
	if bs.Spec.Annotations[annotationContainerType] != containerTypeSandbox || bs.Spec.Linux == nil {
		return nil
	}
	for _, want := range []struct {
		ns   specs.LinuxNamespaceType
		name string
	}{{specs.NetworkNamespace, "network (hostNetwork)"}, {specs.IPCNamespace, "IPC (hostIPC)"}} {
		found := false
		for _, ns := range bs.Spec.Linux.Namespaces {
			if ns.Type == want.ns {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("pod %s shares the host's %s namespace, which a VM cannot do; run it with another runtime handler: %w",
				bs.Spec.Annotations[annotationSandboxID], want.name, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// hostNetNSPaths are the network namespaces that are never a container's:
// the host's (init's) and the shim's own (containerd's).
var hostNetNSPaths = []string{"/proc/1/ns/net", "/proc/self/ns/net"}

// CheckNetNS refuses a container whose spec joins a network namespace
// that is the host's own (or the shim's), whatever the client (ctr run
// --with-ns network:/proc/1/ns/net as much as a CRI pod): the sandbox
// would attach that namespace's links to its taps and take the host's
// network away. path is the spec's namespace path; empty is fine (a new
// namespace).
func CheckNetNS(path string) error {
	if path == "" {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fmt.Errorf("network namespace %s: %w: %w", path, err, errdefs.ErrInvalidArgument)
	}
	for _, h := range hostNetNSPaths {
		var hs unix.Stat_t
		if err := unix.Stat(h, &hs); err != nil {
			continue
		}
		if hs.Dev == st.Dev && hs.Ino == st.Ino {
			return fmt.Errorf("network namespace %s is the host's own (%s): a sandbox would take its links into the VM; give the container a network namespace of its own: %w",
				path, h, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// IsCRISandbox reports whether the spec is a CRI pod's sandbox (pause)
// container.
func (bs *Spec) IsCRISandbox() bool {
	return bs.Spec.Annotations[annotationContainerType] == containerTypeSandbox
}

// PodContainer returns the id of the pod's sandbox container whose
// namespaces container id joins in the guest: CRI gives an application
// container the paths of its pod's ipc, uts and pid namespaces, which in
// the guest are those of the pod's sandbox (pause) container. It is empty
// for the sandbox container itself and for containers outside a CRI pod.
func (bs *Spec) PodContainer(id string) string {
	a := bs.Spec.Annotations
	if a[annotationContainerType] != containerTypeContainer {
		return ""
	}
	if pod := a[annotationSandboxID]; pod != id {
		return pod
	}
	return ""
}

// DNS reads the resolver configuration of the resolv.conf that containerd's
// CRI plugin made for pod podID and the spec bind-mounts, or nil when it has
// none.
func (bs *Spec) DNS(podID string) *api.DNS {
	own := VolumePolicy{podID: podID}
	for _, m := range bs.Spec.Mounts {
		if m.Destination == "/etc/resolv.conf" && isBind(m) && own.ownCRIPath(filepath.Clean(m.Source)) {
			return readResolvConf(m)
		}
	}
	return nil
}

func readResolvConf(m specs.Mount) *api.DNS {
	f, err := os.Open(m.Source)
	if err != nil {
		return nil
	}
	defer func() { _ = f.Close() }()
	var d api.DNS
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || strings.HasPrefix(fields[0], "#") || strings.HasPrefix(fields[0], ";") {
			continue
		}
		switch fields[0] {
		case "nameserver":
			d.Servers = append(d.Servers, fields[1])
		case "search":
			d.Searches = append(d.Searches, fields[1:]...)
		case "options":
			d.Options = append(d.Options, fields[1:]...)
		}
	}
	if len(d.Servers) == 0 && len(d.Searches) == 0 && len(d.Options) == 0 {
		return nil
	}
	return &d
}
