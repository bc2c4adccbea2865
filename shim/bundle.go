package shim

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const (
	// specFile is the OCI runtime spec inside a bundle.
	specFile = "config.json"
	// stateFile is what the shim leaves in a bundle so that the `delete`
	// action can clean up after a crashed shim.
	stateFile = "veil-shim.json"
)

// annotationGroup puts containers outside a CRI pod (ctr, nerdctl) into
// one shim and sandbox.
const annotationGroup = "io.containerd.veil.v2.group"

// sandboxIDFor returns the sandbox (and shim group) a container belongs
// to, checked with the id rule: its CRI pod's id (io.kubernetes.cri.
// sandbox-id, which containerd's CRI plugin sets and nothing overrides,
// so that no container can join another pod's VM), else the group
// annotation, else its own id. A group annotation that names another
// sandbox than the container's CRI pod is refused.
func sandboxIDFor(containerID string, annotations map[string]string) (string, error) {
	pod, group := annotations[annotationSandboxID], annotations[annotationGroup]
	id := containerID
	switch {
	case pod != "" && group != "" && group != pod:
		return "", invalidArgument{fmt.Errorf("container %s: annotation %s=%q names another sandbox than its pod %s (%s)", containerID, annotationGroup, group, pod, annotationSandboxID)}
	case pod != "":
		id = pod
	case group != "":
		id = group
	}
	if err := validateID("sandbox id", id); err != nil {
		return "", err
	}
	return id, nil
}

// bundleSpec is a container's parsed spec plus the raw bytes.
type bundleSpec struct {
	Raw  []byte
	Spec specs.Spec
}

// readSpec reads bundle/config.json.
func readSpec(bundle string) (*bundleSpec, error) {
	path := filepath.Join(bundle, specFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read container spec: %w", err)
	}
	bs := &bundleSpec{Raw: b}
	if err := json.Unmarshal(b, &bs.Spec); err != nil {
		return nil, fmt.Errorf("parse container spec %s: %w", path, err)
	}
	return bs, nil
}

// hostNetNS returns the network namespace path the spec names (a pod's
// namespace prepared by CRI), or "" when the container asks for a new one
// or shares the host's.
func (bs *bundleSpec) hostNetNS() string {
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

// guestSpec returns the spec to send to the agent. A network namespace
// with a path is the pod's network, which inside the VM is the guest's own
// network, so that entry is dropped (the container joins the VM's
// network); a network namespace without a path (ctr run) stays: a fresh
// netns in the guest. Other namespace paths are left for the agent, which
// joins the pod container's namespaces in their place (or makes new ones).
func guestSpec(s specs.Spec) ([]byte, error) {
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
