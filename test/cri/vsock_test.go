package cri

import (
	"path/filepath"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/veil-runtime/veil/test/criimage"
	"github.com/veil-runtime/veil/test/harness"
)

// TestVsockDenied runs a small static program that calls
// socket(AF_VSOCK, ...) in containers with every kind of seccomp
// profile: the agent's rule makes it fail with EPERM in each, while
// AF_UNIX and AF_INET sockets still open.
func TestVsockDenied(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	if _, err := f.cl.Pull(ctx, criimage.VsockProbe, nil); err != nil {
		t.Fatal(err)
	}
	// A Localhost profile that allows everything and logs socket: a
	// permissive rule for socket without any condition on its family.
	profile := filepath.Join(t.TempDir(), "log-socket.json")
	harness.WriteFile(t, profile, `{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],"syscalls":[{"names":["socket"],"action":"SCMP_ACT_LOG"}]}`)

	podCfg := f.podConfig("vsock")
	pod := f.runPod(t, harness.HandlerVeil, podCfg)
	cases := []struct {
		name    string
		profile *runtimeapi.SecurityProfile
	}{
		{name: "unconfined", profile: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}},
		{name: "runtime-default", profile: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}},
		{name: "localhost profile allowing socket", profile: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: profile}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Container(strings.ReplaceAll(tc.name, " ", "-"), criimage.VsockProbe, "sleep", "1000")
			c.Linux.SecurityContext = &runtimeapi.LinuxContainerSecurityContext{Seccomp: tc.profile}
			id := f.startContainer(t, pod, podCfg, c)
			out, _, code := f.execSync(t, id, "vsockprobe", "vsock")
			if code != 2 || out != "vsock: EPERM\n" {
				t.Errorf("socket(AF_VSOCK): %q, exit %d; want EPERM", out, code)
			}
			for _, fam := range []string{"unix", "inet"} {
				if out, _, code := f.execSync(t, id, "vsockprobe", fam); code != 0 {
					t.Errorf("socket(%s): %q, exit %d; want ok", fam, out, code)
				}
			}
		})
	}
}
