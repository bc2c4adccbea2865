package cri

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/veil-runtime/veil/test/harness"
)

// TestPodVolumes checks volumes through virtio-fs: directory and file
// binds, read-write and read-only (enforced in the guest), an emptyDir
// shared by two containers, the pod's /dev/shm, and a refused source.
func TestPodVolumes(t *testing.T) { modes(t, testPodVolumes) }

func testPodVolumes(t *testing.T, f *fixture) {
	dirs := map[string]string{}
	for _, d := range []string{"rw", "ro", "empty", "cfg"} {
		dirs[d] = filepath.Join(f.volumes, d)
		if err := os.MkdirAll(dirs[d], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dirs["ro"], "data"), []byte("read-only data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dirs["cfg"], "app.conf")
	if err := os.WriteFile(cfgFile, []byte("answer=42\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	podCfg := f.podConfig("volumes")
	pod := f.runPod(t, harness.HandlerVeil, podCfg)
	mounts := []*runtimeapi.Mount{
		{ContainerPath: "/rw", HostPath: dirs["rw"]},
		{ContainerPath: "/ro", HostPath: dirs["ro"], Readonly: true},
		{ContainerPath: "/etc/app.conf", HostPath: cfgFile, Readonly: true},
		{ContainerPath: "/cache", HostPath: dirs["empty"]},
	}
	writer := shContainer("writer", `while true; do sleep 1; done`)
	writer.Mounts = mounts
	writerID := f.startContainer(t, pod, podCfg, writer)
	reader := shContainer("reader", `while true; do sleep 1; done`)
	reader.Mounts = []*runtimeapi.Mount{{ContainerPath: "/cache", HostPath: dirs["empty"]}}
	readerID := f.startContainer(t, pod, podCfg, reader)

	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"rw directory: guest writes reach the host", func(t *testing.T) {
			f.mustExec(t, writerID, "sh", "-c", "echo from-guest > /rw/out")
			b, err := os.ReadFile(filepath.Join(dirs["rw"], "out"))
			if err != nil || string(b) != "from-guest\n" {
				t.Fatalf("host file: %q, %v", b, err)
			}
		}},
		{"rw directory: host writes reach the guest", func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(dirs["rw"], "in"), []byte("from-host\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if got := f.mustExec(t, writerID, "cat", "/rw/in"); got != "from-host\n" {
				t.Fatalf("guest read %q", got)
			}
		}},
		{"ro directory: readable, writes refused in the guest", func(t *testing.T) {
			if got := f.mustExec(t, writerID, "cat", "/ro/data"); got != "read-only data\n" {
				t.Fatalf("guest read %q", got)
			}
			_, errOut, code := f.execSync(t, writerID, "sh", "-c", "echo x > /ro/new")
			if code == 0 || !strings.Contains(errOut, "Read-only file system") {
				t.Fatalf("write to ro volume: exit %d, stderr %q", code, errOut)
			}
			if mi := f.mustExec(t, writerID, "grep", " /ro ", "/proc/self/mountinfo"); !strings.Contains(mi, " ro,") && !strings.Contains(mi, " ro ") {
				t.Fatalf("/ro not mounted read-only in the guest: %s", mi)
			}
			if _, err := os.Stat(filepath.Join(dirs["ro"], "new")); !os.IsNotExist(err) {
				t.Fatalf("file appeared on the host: %v", err)
			}
		}},
		{"ro file", func(t *testing.T) {
			if got := f.mustExec(t, writerID, "cat", "/etc/app.conf"); got != "answer=42\n" {
				t.Fatalf("guest read %q", got)
			}
			if _, _, code := f.execSync(t, writerID, "sh", "-c", "echo x >> /etc/app.conf"); code == 0 {
				t.Fatal("append to a read-only file volume succeeded")
			}
		}},
		{"emptyDir shared by two containers", func(t *testing.T) {
			f.mustExec(t, writerID, "sh", "-c", "echo shared > /cache/note")
			if got := f.mustExec(t, readerID, "cat", "/cache/note"); got != "shared\n" {
				t.Fatalf("reader saw %q", got)
			}
		}},
		{"/dev/shm has the pod's size and is shared by the pod", func(t *testing.T) {
			out := f.mustExec(t, writerID, "df", "-k", "/dev/shm")
			fields := strings.Fields(strings.Split(strings.TrimSpace(out), "\n")[1])
			if len(fields) < 2 || fields[1] != "65536" {
				t.Fatalf("df /dev/shm: %q, want 65536 KiB (containerd's 64 MiB)", out)
			}
			f.mustExec(t, writerID, "sh", "-c", "echo shm > /dev/shm/x")
			if got := f.mustExec(t, readerID, "cat", "/dev/shm/x"); got != "shm\n" {
				t.Fatalf("reader saw %q in /dev/shm", got)
			}
		}},
		{"/dev/shm of the requested size (a memory emptyDir)", func(t *testing.T) {
			// What kubelet does for an emptyDir of medium Memory with a
			// sizeLimit mounted at /dev/shm: a host tmpfs of that size.
			dshm := filepath.Join(f.volumes, "dshm")
			if err := os.Mkdir(dshm, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mount("tmpfs", dshm, "tmpfs", 0, "size=16m"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = unix.Unmount(dshm, unix.MNT_DETACH) })
			cfg := shContainer("bigshm", `while true; do sleep 1; done`)
			cfg.Mounts = []*runtimeapi.Mount{{ContainerPath: "/dev/shm", HostPath: dshm}}
			id := f.startContainer(t, pod, podCfg, cfg)
			out := f.mustExec(t, id, "df", "-k", "/dev/shm")
			fields := strings.Fields(strings.Split(strings.TrimSpace(out), "\n")[1])
			if len(fields) < 2 || fields[1] != "16384" {
				t.Fatalf("df /dev/shm: %q, want 16384 KiB", out)
			}
		}},
		{"a source outside the allowed paths is refused", func(t *testing.T) {
			bad := shContainer("bad", "true")
			bad.Mounts = []*runtimeapi.Mount{{ContainerPath: "/host-etc", HostPath: "/etc", Readonly: true}}
			// CRI's CreateContainer only records the container; the shim
			// sees the mount at StartContainer.
			id, err := f.createContainer(pod, podCfg, bad)
			if err == nil {
				_, err = f.cl.Runtime.StartContainer(f.ctx, &runtimeapi.StartContainerRequest{ContainerId: id})
			}
			if err == nil || !strings.Contains(err.Error(), "outside volumes.allowed_host_paths") {
				t.Fatalf("container with /etc: %v, want a refusal naming volumes.allowed_host_paths", err)
			}
			t.Logf("refused: %v", err)
			// The pod is unharmed.
			if got := f.mustExec(t, readerID, "echo", "alive"); got != "alive\n" {
				t.Fatalf("pod after refusal: %q", got)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, tc.run)
	}
}
