package statedir_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/runtime/statedir"
	"github.com/veil-runtime/veil/test/harness"
	"github.com/veil-runtime/veil/virtiofs"
)

func TestMain(m *testing.M) { harness.Main(m) }

// served is a share with a real virtiofsd serving it.
type served struct {
	dir   statedir.Dir
	share *statedir.Share
	fsd   *virtiofs.Daemon
}

func serveShare(t *testing.T) served {
	t.Helper()
	cfg := harness.SandboxConfig(t)
	ctx := context.Background()
	d, err := statedir.New(cfg.StateDir, "sb1")
	if err != nil {
		t.Fatal(err)
	}
	if err := statedir.Create(d); err != nil {
		t.Fatal(err)
	}
	sh, err := statedir.CreateShare(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	fsd, err := virtiofs.Start(ctx, virtiofs.Config{Path: cfg.Virtiofs.Path, SharedDir: d.SharedDir(), Dir: d.Path()})
	if err != nil {
		t.Fatal(err)
	}
	sh.SetServer(fsd)
	t.Cleanup(func() {
		_ = fsd.Stop(ctx)
		_ = sh.Close()
		if err := statedir.Remove(ctx, d); err != nil {
			t.Errorf("remove: %v", err)
		}
		if l := harness.Leftovers(cfg.StateDir, "sb1"); len(l) > 0 {
			t.Errorf("left: %q", l)
		}
	})
	// virtiofsd sets up its namespace (pivot into the share) on its own
	// time: wait until its root is the share.
	want, err := os.Stat(d.SharedDir())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := os.Stat(guestView(fsd, ""))
		if err == nil && os.SameFile(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("virtiofsd did not pivot into the share: %v", err)
		}
		<-time.After(10 * time.Millisecond)
	}
	return served{dir: d, share: sh, fsd: fsd}
}

// guestView is rel as virtiofsd sees it, so as it acts for the guest:
// through its root, in its mount namespace.
func guestView(fsd *virtiofs.Daemon, rel string) string {
	return filepath.Join("/proc", strconv.Itoa(fsd.Pid()), "root", rel)
}

// serverMounts are the mount points and options in virtiofsd's namespace.
func serverMounts(t *testing.T, fsd *virtiofs.Daemon) map[string]*mountinfo.Info {
	t.Helper()
	out := map[string]*mountinfo.Info{}
	for _, m := range harness.MountsOf(t, fsd.Pid()) {
		out[m.Mountpoint] = m
	}
	return out
}

func openPath(t *testing.T, p string) *os.File {
	t.Helper()
	fd, err := unix.Open(p, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), p)
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func tmpfsAt(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
}

// TestShareContainer adds a container with a rootfs and volumes of every
// kind, then acts as the guest would through virtiofsd, and checks the
// host.
func TestShareContainer(t *testing.T) {
	s := serveShare(t)
	ctx := context.Background()
	src := t.TempDir()
	rootfs := filepath.Join(src, "rootfs")
	harness.WriteFile(t, rootfs+"/etc/hostname", "c1")
	rw, ro, rro, file := filepath.Join(src, "rw"), filepath.Join(src, "ro"), filepath.Join(src, "rro"), filepath.Join(src, "file")
	harness.WriteFile(t, rw+"/a", "rw")
	harness.WriteFile(t, file, "host file")
	for _, d := range []string{ro, rro} {
		harness.WriteFile(t, d+"/a", "original")
		tmpfsAt(t, d+"/sub")
		harness.WriteFile(t, d+"/sub/b", "original")
	}
	fs := statedir.ContainerFS{
		BundleRootfs: rootfs,
		Volumes: []statedir.Volume{
			{Source: openPath(t, rw), Recursive: true},
			{Source: openPath(t, ro), Recursive: true, ReadOnly: true},
			{Source: openPath(t, rro), Recursive: true, RecursiveReadOnly: true},
			{Source: openPath(t, file), ReadOnly: true},
		},
		VolumeNames: []string{"1", "2", "3", "5"},
	}
	subs, err := s.share.AddContainer(ctx, "c1", fs)
	if err != nil {
		t.Fatal(err)
	}
	wantSubs := "/run/veil/shared/c1/mounts/2/sub /run/veil/shared/c1/mounts/3/sub"
	if strings.Join(subs, " ") != wantSubs {
		t.Errorf("submounts %q, want %s", subs, wantSubs)
	}
	g := func(rel string) string { return guestView(s.fsd, rel) }

	t.Run("rootfs and rw volume writable by the guest", func(t *testing.T) {
		for _, p := range []string{"c1/rootfs/new", "c1/mounts/1/new"} {
			if err := os.WriteFile(g(p), []byte("guest"), 0o644); err != nil {
				t.Errorf("write %s: %v", p, err)
			}
		}
		if b, _ := os.ReadFile(rw + "/new"); string(b) != "guest" {
			t.Errorf("rw volume: host sees %q", b)
		}
	})
	t.Run("read-only volume is read-only on the host", func(t *testing.T) {
		for _, p := range []string{"c1/mounts/2/a", "c1/mounts/3/a", "c1/mounts/3/sub/b", "c1/mounts/5"} {
			err := os.WriteFile(g(p), []byte("guest"), 0o644)
			if !errors.Is(err, unix.EROFS) {
				t.Errorf("write %s: %v, want EROFS", p, err)
			}
		}
		for _, p := range []string{ro + "/a", rro + "/a", rro + "/sub/b"} {
			if b, _ := os.ReadFile(p); string(b) != "original" {
				t.Errorf("%s changed: %q", p, b)
			}
		}
		if b, _ := os.ReadFile(file); string(b) != "host file" {
			t.Errorf("file volume changed: %q", b)
		}
	})
	t.Run("non-recursive ro keeps the submount writable as runc does", func(t *testing.T) {
		if err := os.WriteFile(g("c1/mounts/2/sub/b"), []byte("guest"), 0o644); err != nil {
			t.Errorf("write submount of a non-recursive ro volume: %v", err)
		}
	})
	t.Run("share root and container directories refuse the guest", func(t *testing.T) {
		for _, p := range []string{"junk", "c1/junk", "c1/mounts/junk", "c2"} {
			err := os.Mkdir(g(p), 0o755)
			if !errors.Is(err, unix.EROFS) {
				t.Errorf("mkdir %s: %v, want EROFS", p, err)
			}
			err = os.Symlink("/", g(p+"-link"))
			if !errors.Is(err, unix.EROFS) {
				t.Errorf("symlink %s: %v, want EROFS", p, err)
			}
		}
		if err := os.Rename(g("c1/mounts"), g("c1/moved")); !errors.Is(err, unix.EROFS) {
			t.Errorf("rename mounts: %v, want EROFS", err)
		}
	})
	t.Run("every mount is nosuid and nodev in virtiofsd's namespace", func(t *testing.T) {
		ms := serverMounts(t, s.fsd)
		for _, mp := range []string{"/c1/rootfs", "/c1/mounts/1", "/c1/mounts/2", "/c1/mounts/2/sub", "/c1/mounts/3/sub", "/c1/mounts/5"} {
			m := ms[mp]
			if m == nil {
				t.Errorf("%s not mounted in virtiofsd's namespace", mp)
				continue
			}
			for _, o := range []string{"nosuid", "nodev"} {
				if !strings.Contains(","+m.Options+",", ","+o+",") {
					t.Errorf("%s options %q lack %s", mp, m.Options, o)
				}
			}
		}
		if m := ms["/"]; m == nil || !strings.HasPrefix(m.Options, "ro") {
			t.Errorf("share root in virtiofsd's namespace: %+v, want read-only", m)
		}
	})
	t.Run("nothing of the container is mounted on the host", func(t *testing.T) {
		host, err := statedir.HostMounts(s.dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range host {
			if strings.Contains(m, "/c1") {
				t.Errorf("host mount %s", m)
			}
		}
	})
	t.Run("the host may remove a volume's directory while the guest has it", func(t *testing.T) {
		// critest's read-only mount specs do this: unmount the
		// submount, then remove its directory, with the pod running.
		if err := unix.Unmount(ro+"/sub", 0); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(ro + "/sub"); err != nil {
			t.Errorf("rmdir of the volume's submount directory: %v", err)
		}
	})
	if err := s.share.RemoveContainer(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	for mp := range serverMounts(t, s.fsd) {
		if strings.HasPrefix(mp, "/c1") {
			t.Errorf("still mounted in virtiofsd's namespace: %s", mp)
		}
	}
	if _, err := os.Lstat(filepath.Join(s.dir.Path(), "share", "c1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("container directory left: %v", err)
	}
	if err := s.share.RemoveContainer(ctx, "c1"); err != nil {
		t.Errorf("second remove: %v", err)
	}
	for _, p := range []string{rootfs + "/etc/hostname", rw + "/a", file} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("source %s: %v", p, err)
		}
	}
}

// TestShareRefusesBadContainers: bad ids, an existing container, and a
// rootfs that fails to mount leave nothing behind.
func TestShareRefusesBadContainers(t *testing.T) {
	s := serveShare(t)
	ctx := context.Background()
	rootfs := t.TempDir()
	for _, id := range []string{"..", "a/b", "", "-x"} {
		if _, err := s.share.AddContainer(ctx, id, statedir.ContainerFS{BundleRootfs: rootfs}); err == nil {
			t.Errorf("AddContainer(%q) succeeded", id)
		}
	}
	if _, err := s.share.AddContainer(ctx, "c1", statedir.ContainerFS{BundleRootfs: rootfs}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.share.AddContainer(ctx, "c1", statedir.ContainerFS{BundleRootfs: rootfs}); err == nil {
		t.Error("second AddContainer(c1) succeeded")
	}
	bad := statedir.ContainerFS{Rootfs: []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=/nonexistent"}}}}
	if _, err := s.share.AddContainer(ctx, "c2", bad); err == nil {
		t.Error("a bad rootfs mounted")
	}
	if _, err := os.Lstat(filepath.Join(s.dir.Path(), "share", "c2")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed container left its directory: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Join(s.dir.Path(), "staging"))
	if len(ents) > 0 {
		t.Errorf("staging left: %v", ents)
	}
}

// TestShareServerGone: once virtiofsd has exited, its namespace and the
// container mounts are gone, and RemoveContainer still completes.
func TestShareServerGone(t *testing.T) {
	s := serveShare(t)
	ctx := context.Background()
	if _, err := s.share.AddContainer(ctx, "c1", statedir.ContainerFS{BundleRootfs: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if err := s.fsd.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.share.RemoveContainer(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.share.AddContainer(ctx, "c2", statedir.ContainerFS{BundleRootfs: t.TempDir()}); !errors.Is(err, statedir.ErrServerGone) {
		t.Fatalf("AddContainer with virtiofsd gone: %v, want ErrServerGone", err)
	}
	// After the sandbox's stop closed the share, removing a container
	// (a late task delete) has nothing to do.
	_ = s.share.Close()
	if err := s.share.RemoveContainer(ctx, "c3"); err != nil {
		t.Fatalf("RemoveContainer after Close: %v", err)
	}
}
