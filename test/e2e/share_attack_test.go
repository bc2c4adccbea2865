package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/test/harness"
)

// TestGuestAttacksShare acts as guest root (through the agent's debug
// exec, `veil sandbox exec`) against the virtio-fs share of a running
// sandbox, the way a container that escaped into the guest kernel would,
// and checks the host: every attack of the issue "the virtio-fs share is
// hostile ground" is refused, the pod's next container and the deletes
// work, and a canary directory outside the share is untouched.
func TestGuestAttacksShare(t *testing.T) {
	root := t.TempDir()
	e := setup(t, config.HypervisorQEMU, func(c *config.Config) {
		c.Volumes.AllowedHostPaths = append(c.Volumes.AllowedHostPaths, root)
	})
	canary := filepath.Join(root, "canary")
	harness.WriteFile(t, filepath.Join(canary, "keep"), "canary")
	harness.WriteFile(t, filepath.Join(canary, "sub", "keep"), "canary")
	vols := map[string]string{}
	for _, name := range []string{"ro", "rro", "rw"} {
		dir := filepath.Join(root, name)
		harness.WriteFile(t, filepath.Join(dir, name+"-marker"), "original")
		vols[name] = dir
	}
	// A submount in the rro volume: read-only all the way down.
	harness.WriteFile(t, filepath.Join(vols["rro"], "sub", "file"), "")
	harness.MustRun(t, "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", filepath.Join(vols["rro"], "sub"))
	t.Cleanup(func() { _ = exec.Command("umount", "-l", filepath.Join(vols["rro"], "sub")).Run() })
	harness.WriteFile(t, filepath.Join(vols["rro"], "sub", "file"), "original")

	const pod, second = "e2e-attack", "e2e-attack-2"
	t.Cleanup(func() {
		for _, id := range []string{second, pod} {
			forceRemove(t, e, id)
		}
	})
	canaryMounts := mountsUnder(t, root)
	mustCtr(t, e.c, runArgs([]string{"-d",
		"--mount", "type=bind,src=" + vols["ro"] + ",dst=/ro,options=rbind:ro",
		"--mount", "type=bind,src=" + vols["rro"] + ",dst=/rro,options=rbind:rro",
		"--mount", "type=bind,src=" + vols["rw"] + ",dst=/rw,options=rbind:rw",
	}, pod, "sleep", "1000")...)
	waitRunning(t, e, pod)

	share := "/run/veil/shared"
	// Each line is one attack; the script prints "name rc" for each.
	attacks := []struct{ name, cmd string }{
		{"swap mounts for a symlink", "mv " + share + "/" + pod + "/mounts " + share + "/" + pod + "/old && ln -s " + canary + " " + share + "/" + pod + "/mounts"},
		{"symlink inside mounts", "ln -s " + canary + " " + share + "/" + pod + "/mounts/evil"},
		{"rename mounts away", "mv " + share + "/" + pod + "/mounts " + share + "/" + pod + "/gone"},
		{"symlink over the container dir", "ln -sfn / " + share + "/" + pod},
		{"symlink at the next container's dir", "ln -s " + canary + " " + share + "/" + second},
		{"directory at the next container's dir", "mkdir " + share + "/" + second},
		{"junk in mounts", "mkdir " + share + "/" + pod + "/mounts/junk && touch " + share + "/" + pod + "/mounts/junk/f"},
		{"junk in the share root", "touch " + share + "/junk"},
		{"fill the host's memory", "dd if=/dev/zero of=" + share + "/fill bs=1M count=8"},
		{"write a read-only volume", "for d in " + share + "/" + pod + "/mounts/*; do [ -e $d/ro-marker ] && echo guest > $d/ro-marker; done; false"},
		{"write a rro volume", "for d in " + share + "/" + pod + "/mounts/*; do [ -e $d/rro-marker ] && echo guest > $d/rro-marker; done; false"},
		{"write a rro volume's submount", "for d in " + share + "/" + pod + "/mounts/*; do [ -e $d/rro-marker ] && echo guest > $d/sub/file && exit 0; done; exit 1"},
		{"write a rw volume", "for d in " + share + "/" + pod + "/mounts/*; do [ -e $d/rw-marker ] && echo guest > $d/rw-marker && exit 0; done; exit 1"},
		{"setuid file in the rootfs", "cp /bin/busybox " + share + "/" + pod + "/rootfs/suid && chmod 4755 " + share + "/" + pod + "/rootfs/suid"},
		// virtiofsd runs without CAP_MKNOD (--modcaps=-mknod): no device
		// node reaches a host filesystem; a FIFO still does.
		{"device node in the rootfs", "mknod " + share + "/" + pod + "/rootfs/mem c 1 1"},
		{"fifo in the rootfs", "mkfifo " + share + "/" + pod + "/rootfs/fifo"},
	}
	var script strings.Builder
	for i, a := range attacks {
		script.WriteString("( " + a.cmd + " ) >/dev/null 2>&1; echo " + strconv.Itoa(i) + " $?\n")
	}
	out := guestExec(t, e, pod, script.String())
	rc := map[int]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			i, _ := strconv.Atoi(f[0])
			rc[i] = f[1]
		}
	}
	allowed := map[string]bool{"write a rw volume": true, "setuid file in the rootfs": true, "fifo in the rootfs": true}
	for i, a := range attacks {
		got, ok := rc[i]
		switch {
		case !ok:
			t.Errorf("attack %q did not report (guest output %q)", a.name, out)
		case allowed[a.name] && got != "0":
			t.Errorf("%q: the container's own writable filesystems should take it, got exit %s", a.name, got)
		case !allowed[a.name] && got == "0":
			t.Errorf("attack %q succeeded", a.name)
		}
	}
	for name, want := range map[string]string{"ro": "original", "rro": "original", "rw": "guest"} {
		if b, _ := os.ReadFile(filepath.Join(vols[name], name+"-marker")); strings.TrimSpace(string(b)) != want {
			t.Errorf("host's %s volume file holds %q, want %q", name, b, want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(vols["rro"], "sub", "file")); string(b) != "original" {
		t.Errorf("host's rro submount file holds %q", b)
	}
	t.Run("setuid and device nodes are inert on the host side", func(t *testing.T) {
		found := 0
		for _, m := range harness.MountsOf(t, harness.HelperPid(t, e.stateDir, pod, "virtiofsd")) {
			if !strings.HasPrefix(m.Mountpoint, "/"+pod+"/") {
				continue
			}
			found++
			opts := strings.Split(m.Options, ",")
			if !slices.Contains(opts, "nosuid") || !slices.Contains(opts, "nodev") {
				t.Errorf("%s in virtiofsd's namespace is %q, want nosuid,nodev", m.Mountpoint, m.Options)
			}
		}
		if found < 4 {
			t.Errorf("found %d container mounts in virtiofsd's namespace, want the rootfs and 3 volumes", found)
		}
	})

	// The pod's next container (planted at above) starts as usual.
	mustCtr(t, e.c, runArgs([]string{"-d", "--annotation", "io.kubernetes.cri.sandbox-id=" + pod}, second, "sleep", "1000")...)
	waitRunning(t, e, second)
	for _, id := range []string{second, pod} {
		mustCtr(t, e.c, "task", "kill", "-s", "SIGKILL", id)
		mustCtr(t, e.c, "task", "delete", "-f", id)
		mustCtr(t, e.c, "containers", "delete", id)
	}
	checkNoLeftovers(t, e.stateDir, pod)
	for _, p := range []string{"keep", "sub/keep"} {
		if b, err := os.ReadFile(filepath.Join(canary, p)); err != nil || string(b) != "canary" {
			t.Errorf("canary %s: %q, %v", p, b, err)
		}
	}
	ents, _ := os.ReadDir(canary)
	if len(ents) != 2 {
		t.Errorf("canary holds %d entries, want 2", len(ents))
	}
	if got := mountsUnder(t, root); !slices.Equal(got, canaryMounts) {
		t.Errorf("host mounts below the test root changed: %q, were %q", got, canaryMounts)
	}
}

// TestHostNetNSRefused: a container asking for the network namespace
// containerd (and so the shim) runs in is refused before any VM starts,
// for ctr as for CRI.
func TestHostNetNSRefused(t *testing.T) {
	e := setup(t, config.HypervisorQEMU)
	const id = "e2e-hostnet"
	t.Cleanup(func() { forceRemove(t, e, id) })
	r := ctr(t, e.c, nil, runArgs([]string{"--rm", "--with-ns", "network:" + harness.NetNSPath(e.c.NetNS)}, id, "true")...)
	if r.code == 0 || !strings.Contains(r.stderr, "is the host's own") {
		t.Fatalf("ctr run in containerd's own network namespace: %s", r)
	}
	ctr(t, e.c, nil, "containers", "delete", id)
	checkNoLeftovers(t, e.stateDir, id)
}

// guestExec runs script with sh as root in sandbox id's guest, outside
// any container (the agent's debug exec), and returns its stdout.
func guestExec(t *testing.T, e *env, id, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	veil := filepath.Join(harness.OutputDir(), "bin", "veil")
	cmd := exec.CommandContext(ctx, veil, "--config", e.cfgPath, "sandbox", "exec", "--timeout", "90s", id, "--", "sh", "-c", script)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("veil sandbox exec %s: %v\nstdout: %s\nstderr: %s", id, err, out, stderr)
	}
	return string(out)
}

func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		out = append(out, m.Mountpoint)
	}
	slices.Sort(out)
	return out
}
