package cri

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/veil-runtime/veil/test/criimage"
	"github.com/veil-runtime/veil/test/harness"
)

// TestVsockDenied runs a small static program that calls
// socket(AF_VSOCK, ...) in containers with every kind of seccomp
// profile: the agent's rule makes it fail with EPERM in each, also when
// the family has a bit set above the 32 the kernel reads, while AF_UNIX
// and AF_INET sockets still open. It checks exec'd processes and a
// container's own process, and that the guest kernel has no io_uring
// (whose IORING_OP_SOCKET would open sockets past seccomp).
func TestVsockDenied(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	if _, err := f.cl.Pull(ctx, criimage.VsockProbe, nil); err != nil {
		t.Fatal(err)
	}
	// A Localhost profile that allows everything and logs socket: a
	// permissive rule for socket without any condition on its family,
	// for the ABIs containerd's own profile lists.
	profile := filepath.Join(t.TempDir(), "log-socket.json")
	harness.WriteFile(t, profile, `{"defaultAction":"SCMP_ACT_ALLOW",`+
		`"architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],`+
		`"syscalls":[{"names":["socket"],"action":"SCMP_ACT_LOG"}]}`)

	podCfg := f.podConfig("vsock")
	pod := f.runPod(t, harness.HandlerVeil, podCfg)
	unconfined := &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
	cases := []struct {
		name    string
		profile *runtimeapi.SecurityProfile
	}{
		{name: "unconfined", profile: unconfined},
		{name: "runtime-default", profile: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}},
		{name: "localhost profile logging socket", profile: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: profile}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Container(strings.ReplaceAll(tc.name, " ", "-"), criimage.VsockProbe, "sleep", "1000")
			c.Linux.SecurityContext = &runtimeapi.LinuxContainerSecurityContext{Seccomp: tc.profile}
			id := f.startContainer(t, pod, podCfg, c)
			for _, fam := range []string{"vsock", "vsockhi"} {
				if out, _, code := f.execSync(t, id, "vsockprobe", fam); code != 2 || out != fam+": EPERM\n" {
					t.Errorf("socket(%s): %q, exit %d; want EPERM", fam, out, code)
				}
			}
			for _, fam := range []string{"unix", "inet"} {
				if out, _, code := f.execSync(t, id, "vsockprobe", fam); code != 0 {
					t.Errorf("socket(%s): %q, exit %d; want ok", fam, out, code)
				}
			}
		})
	}
	t.Run("unconfined container process", func(t *testing.T) {
		c := Container("unconfined-init", criimage.VsockProbe, "vsockprobe", "vsockhi")
		c.Linux.SecurityContext = &runtimeapi.LinuxContainerSecurityContext{Seccomp: unconfined}
		id := f.startContainer(t, pod, podCfg, c)
		if st := f.waitExited(t, id, time.Minute); st.ExitCode != 2 {
			t.Errorf("vsockprobe vsockhi as the container's process: exit %d, want 2 (EPERM)", st.ExitCode)
		}
	})
	t.Run("no io_uring in the guest kernel", func(t *testing.T) {
		c := Container("io-uring", criimage.VsockProbe, "sleep", "1000")
		c.Linux.SecurityContext = &runtimeapi.LinuxContainerSecurityContext{Seccomp: unconfined}
		id := f.startContainer(t, pod, podCfg, c)
		if out, _, _ := f.execSync(t, id, "vsockprobe", "io_uring"); out != "io_uring: ENOSYS\n" {
			t.Errorf("io_uring_setup: %q, want ENOSYS (an io_uring could open AF_VSOCK sockets past seccomp)", out)
		}
	})
}
