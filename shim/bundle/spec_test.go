package bundle

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestSandboxIDFor(t *testing.T) {
	cases := []struct {
		name, want, wantErr string
		ann                 map[string]string
	}{
		{name: "own id", want: "c1"},
		{name: "cri pod", ann: map[string]string{"io.kubernetes.cri.sandbox-id": "pod"}, want: "pod"},
		{name: "group outside a pod", ann: map[string]string{"io.containerd.veil.v2.group": "g"}, want: "g"},
		{name: "group naming the container's own pod", ann: map[string]string{"io.kubernetes.cri.sandbox-id": "pod", "io.containerd.veil.v2.group": "pod"}, want: "pod"},
		{name: "group cannot move a pod's container into another pod's VM", ann: map[string]string{"io.kubernetes.cri.sandbox-id": "pod", "io.containerd.veil.v2.group": "otherpod"}, wantErr: "names another sandbox than its pod"},
		{name: "empty annotation ignored", ann: map[string]string{"io.kubernetes.cri.sandbox-id": ""}, want: "c1"},
		{name: "bad group id", ann: map[string]string{"io.containerd.veil.v2.group": "../x"}, wantErr: "invalid sandbox id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SandboxIDFor("c1", tc.ann)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errdefs.IsInvalidArgument(err) {
					t.Fatalf("SandboxIDFor = %q, %v; want InvalidArgument with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestGuestSpec(t *testing.T) {
	ns := func(nss ...specs.LinuxNamespace) specs.Spec {
		return specs.Spec{Linux: &specs.Linux{Namespaces: nss}}
	}
	cases := []struct {
		name string
		in   specs.Spec
		want []specs.LinuxNamespace
	}{
		{name: "ctr run: fresh netns kept",
			in:   ns(specs.LinuxNamespace{Type: specs.PIDNamespace}, specs.LinuxNamespace{Type: specs.NetworkNamespace}),
			want: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace}}},
		{name: "pod netns becomes the VM's network",
			in:   ns(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/var/run/netns/cni-1"}, specs.LinuxNamespace{Type: specs.MountNamespace}),
			want: []specs.LinuxNamespace{{Type: specs.MountNamespace}}},
		{name: "other namespace paths are left to the agent",
			in:   ns(specs.LinuxNamespace{Type: specs.IPCNamespace, Path: "/proc/42/ns/ipc"}),
			want: []specs.LinuxNamespace{{Type: specs.IPCNamespace, Path: "/proc/42/ns/ipc"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := GuestSpec(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			var got specs.Spec
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if len(got.Linux.Namespaces) != len(tc.want) {
				t.Fatalf("namespaces %+v, want %+v", got.Linux.Namespaces, tc.want)
			}
			for i := range tc.want {
				if got.Linux.Namespaces[i] != tc.want[i] {
					t.Fatalf("namespaces %+v, want %+v", got.Linux.Namespaces, tc.want)
				}
			}
			if tc.in.Linux.Namespaces[0].Path != "" && tc.in.Linux.Namespaces[0].Path == "" {
				t.Fatal("input modified")
			}
		})
	}
}

func TestHostNetNS(t *testing.T) {
	cases := []struct {
		name string
		spec specs.Spec
		want string
	}{
		{name: "no linux"},
		{name: "fresh", spec: specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.NetworkNamespace}}}}},
		{name: "pod", spec: specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.NetworkNamespace, Path: "/run/netns/x"}}}}, want: "/run/netns/x"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := (&Spec{Spec: tc.spec}).HostNetNS(); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
