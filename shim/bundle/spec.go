package bundle

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/veil-runtime/veil/agent/api"
)

const (
	// SpecFile is the OCI runtime spec inside a bundle.
	SpecFile = "config.json"
	// StateFile is what the shim leaves in a bundle so that the `delete`
	// action can clean up after a crashed shim (ShimState).
	StateFile = "veil-shim.json"
)

// annotationGroup puts containers outside a CRI pod (ctr, nerdctl) into
// one shim and sandbox.
const annotationGroup = "io.containerd.veil.v2.group"

// SandboxIDFor returns the sandbox (and shim group) a container belongs
// to, checked with the id rule: its CRI pod's id (io.kubernetes.cri.
// sandbox-id, which containerd's CRI plugin sets and nothing overrides,
// so that no container can join another pod's VM), else the group
// annotation, else its own id. A group annotation that names another
// sandbox than the container's CRI pod is refused.
func SandboxIDFor(containerID string, annotations map[string]string) (string, error) {
	pod, group := annotations[annotationSandboxID], annotations[annotationGroup]
	id := containerID
	switch {
	case pod != "" && group != "" && group != pod:
		return "", errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("container %s: annotation %s=%q names another sandbox than its pod %s (%s)", containerID, annotationGroup, group, pod, annotationSandboxID))
	case pod != "":
		id = pod
	case group != "":
		id = group
	}
	if err := api.ValidateID("sandbox id", id); err != nil {
		return "", err
	}
	return id, nil
}

// Spec is a container's parsed spec plus the raw bytes.
type Spec struct {
	Raw  []byte
	Spec specs.Spec
}

// ReadSpec reads the spec of the bundle in directory bundle.
func ReadSpec(bundle string) (*Spec, error) {
	path := filepath.Join(bundle, SpecFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read container spec: %w", err)
	}
	bs := &Spec{Raw: b}
	if err := json.Unmarshal(b, &bs.Spec); err != nil {
		return nil, fmt.Errorf("parse container spec %s: %w", path, err)
	}
	return bs, nil
}

// hostNetNS returns the network namespace path the spec names (a pod's
// namespace prepared by CRI), or "" when the container asks for a new one
// or shares the host's.
func (bs *Spec) HostNetNS() string {
	if bs.Spec.Linux == nil {
		return ""
	}
	for _, ns := range bs.Spec.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			return ns.Path
		}
	}
	return ""
}

// GuestSpec returns the spec to send to the agent. A network namespace
// with a path is the pod's network, which inside the VM is the guest's own
// network, so that entry is dropped (the container joins the VM's
// network); a network namespace without a path (ctr run) stays: a fresh
// netns in the guest. Other namespace paths are left for the agent, which
// joins the pod container's namespaces in their place (or makes new ones).
func GuestSpec(s specs.Spec) ([]byte, error) {
	if s.Linux != nil {
		l := *s.Linux
		var nss []specs.LinuxNamespace
		for _, ns := range l.Namespaces {
			if ns.Path != "" && ns.Type == specs.NetworkNamespace {
				continue
			}
			nss = append(nss, ns)
		}
		l.Namespaces = nss
		s.Linux = &l
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode guest spec: %w", err)
	}
	return b, nil
}
