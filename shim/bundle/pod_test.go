package bundle

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/statedir"
	"github.com/veil-runtime/veil/test/testnet"
)

func TestReadResolvConf(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content string
		want          *api.DNS
	}{
		{"full", "# comment\nnameserver 10.0.0.10\nnameserver 8.8.8.8\nsearch a.svc b.svc\noptions ndots:5 edns0\n", &api.DNS{Servers: []string{"10.0.0.10", "8.8.8.8"}, Searches: []string{"a.svc", "b.svc"}, Options: []string{"ndots:5", "edns0"}}},
		{"empty", "", nil},
		{"comments only", "; x\n# y\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			got := readResolvConf(specs.Mount{Source: p})
			if (got == nil) != (tc.want == nil) || (got != nil && (!reflect.DeepEqual(got.Servers, tc.want.Servers) || !reflect.DeepEqual(got.Searches, tc.want.Searches) || !reflect.DeepEqual(got.Options, tc.want.Options))) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCheckPodNamespaces(t *testing.T) {
	sandbox := map[string]string{annotationContainerType: containerTypeSandbox, annotationSandboxID: "pod1"}
	nss := func(ts ...specs.LinuxNamespaceType) []specs.LinuxNamespace {
		var out []specs.LinuxNamespace
		for _, t := range ts {
			out = append(out, specs.LinuxNamespace{Type: t})
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		ann     map[string]string
		ns      []specs.LinuxNamespace
		wantErr string
	}{
		{"pod network and IPC", sandbox, nss(specs.NetworkNamespace, specs.IPCNamespace, specs.PIDNamespace), ""},
		{"hostPID is fine", sandbox, nss(specs.NetworkNamespace, specs.IPCNamespace), ""},
		{"hostNetwork", sandbox, nss(specs.IPCNamespace), "network (hostNetwork)"},
		{"hostIPC", sandbox, nss(specs.NetworkNamespace), "IPC (hostIPC)"},
		{"not a CRI sandbox (ctr run)", nil, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bs := &Spec{Spec: specs.Spec{Annotations: tc.ann, Linux: &specs.Linux{Namespaces: tc.ns}}}
			err := CheckPodNamespaces(bs)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errdefs.IsInvalidArgument(err) {
				t.Fatalf("err = %v, want InvalidArgument naming %q", err, tc.wantErr)
			}
		})
	}
}

// TestCheckNetNS: a spec joining the host's or the shim's own network
// namespace is refused for every client, a namespace of its own is not.
func TestCheckNetNS(t *testing.T) {
	own := ""
	if os.Geteuid() == 0 {
		own = testnet.NetNSPath(testnet.NetNS(t, "veil-checknetns"))
	}
	for _, tc := range []struct {
		name, path, wantErr string
		needsRoot, refused  bool
	}{
		{name: "new namespace", path: ""},
		{name: "the shim's own", path: "/proc/self/ns/net", wantErr: "is the host's own"},
		{name: "the shim's own through its pid", path: fmt.Sprintf("/proc/%d/ns/net", os.Getpid()), wantErr: "is the host's own"},
		// Where init's namespace cannot even be looked at (a sandboxed
		// machine like ours), it is refused for that.
		{name: "init's (the host's)", path: "/proc/1/ns/net", wantErr: "", needsRoot: true, refused: true},
		{name: "a pod's own", path: own, needsRoot: true},
		{name: "missing", path: "/run/netns/veil-no-such-netns", wantErr: "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.needsRoot && os.Geteuid() != 0 {
				t.Skip("needs root")
			}
			err := CheckNetNS(tc.path)
			if tc.refused {
				if err == nil || !errdefs.IsInvalidArgument(err) {
					t.Fatalf("CheckNetNS(%q) = %v, want InvalidArgument", tc.path, err)
				}
				t.Logf("refused: %v", err)
				return
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errdefs.IsInvalidArgument(err) {
				t.Fatalf("CheckNetNS(%q) = %v, want InvalidArgument with %q", tc.path, err, tc.wantErr)
			}
		})
	}
}

func TestPodOf(t *testing.T) {
	cases := []struct {
		name string
		ann  map[string]string
		want statedir.Pod
	}{
		{name: "CRI container", ann: map[string]string{annotationSandboxName: "web", annotationSandboxNamespace: "shop", annotationSandboxUID: "u-1", annotationContainerType: containerTypeSandbox},
			want: statedir.Pod{Name: "web", Namespace: "shop", UID: "u-1"}},
		{name: "ctr run", ann: map[string]string{"other": "x"}},
		{name: "no annotations"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := PodOf(tc.ann); got != tc.want {
				t.Errorf("PodOf = %+v, want %+v", got, tc.want)
			}
		})
	}
}
