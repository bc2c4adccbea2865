package kubernetes

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/template"

	"github.com/veil-runtime/veil/test/criimage"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// busybox is the image every pod runs (the harness registry serves it).
const busybox = criimage.Busybox

// Pod is the part of a pod's JSON the suite reads.
type Pod struct {
	Metadata struct {
		Name string `json:"name"`
		UID  string `json:"uid"`
	} `json:"metadata"`
	Spec struct {
		Overhead map[string]string `json:"overhead"`
	} `json:"spec"`
	Status struct {
		Phase      string `json:"phase"`
		QOSClass   string `json:"qosClass"`
		PodIP      string `json:"podIP"`
		Conditions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"conditions"`
		ContainerStatuses []ContainerStatus `json:"containerStatuses"`
	} `json:"status"`
}

// ContainerStatus is one container's status.
type ContainerStatus struct {
	Name         string         `json:"name"`
	Ready        bool           `json:"ready"`
	Started      *bool          `json:"started"`
	RestartCount int            `json:"restartCount"`
	State        map[string]any `json:"state"`
}

// Condition returns the status ("True", "False") of condition typ.
func (p *Pod) Condition(typ string) string {
	for _, c := range p.Status.Conditions {
		if c.Type == typ {
			return c.Status
		}
	}
	return ""
}

// Container returns the status of container name.
func (p *Pod) Container(name string) (ContainerStatus, error) {
	for _, c := range p.Status.ContainerStatuses {
		if c.Name == name {
			return c, nil
		}
	}
	return ContainerStatus{}, fmt.Errorf("pod %s has no status of container %s yet", p.Metadata.Name, name)
}

// GetPod reads pod name.
func (k *Cluster) GetPod(ctx context.Context, name string) (*Pod, error) {
	out, err := k.Kubectl(ctx, "get", "pod", name, "-o", "json")
	if err != nil {
		return nil, err
	}
	var p Pod
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		return nil, fmt.Errorf("parse pod %s: %w", name, err)
	}
	return &p, nil
}

// WaitReady waits until pod name is Ready.
func (k *Cluster) WaitReady(ctx context.Context, name string) error {
	_, err := k.Kubectl(ctx, "wait", "--for=condition=Ready", "pod/"+name, "--timeout=5m")
	return err
}

// SandboxID returns the CRI sandbox id of the pod with uid.
func (k *Cluster) SandboxID(ctx context.Context, uid string) (string, error) {
	cl, err := k.C.CRIClient()
	if err != nil {
		return "", err
	}
	defer func() { _ = cl.Close() }()
	resp, err := cl.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
		LabelSelector: map[string]string{"io.kubernetes.pod.uid": uid},
		State:         &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY},
	}})
	if err != nil {
		return "", fmt.Errorf("list sandboxes of pod %s: %w", uid, err)
	}
	if len(resp.Items) != 1 {
		return "", fmt.Errorf("pod %s has %d ready sandboxes", uid, len(resp.Items))
	}
	return resp.Items[0].Id, nil
}

// Manifest renders a manifest template with the runtime class (and the
// suite's image and node).
func Manifest(tmpl, class string, extra map[string]string) (string, error) {
	t, err := template.New("manifest").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return "", err
	}
	data := map[string]string{"Class": class, "Node": NodeName, "Image": busybox}
	for k, v := range extra {
		data[k] = v
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", err
	}
	return strings.TrimSpace(b.String()) + "\n", nil
}
