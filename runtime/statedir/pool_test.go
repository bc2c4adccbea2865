package statedir

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestNewPool(t *testing.T) {
	cases := []struct {
		name, stateDir, vmid string
		wantErr              string
	}{
		{name: "short id", stateDir: "/run/veil/sandboxes", vmid: "vm1"},
		{name: "longest id that fits below .pool", stateDir: "/run/veil/sandboxes", vmid: strings.Repeat("a", 65)},
		{name: "the limit counts .pool", stateDir: "/run/veil/sandboxes", vmid: strings.Repeat("a", 66), wantErr: "use an id of at most 65 characters"},
		{name: "long state dir", stateDir: "/" + strings.Repeat("d", 90), vmid: "vm1", wantErr: "Unix socket path"},
		{name: "slash", stateDir: "/run", vmid: "a/b", wantErr: "invalid pool VM id"},
		{name: "dot dot", stateDir: "/run", vmid: "..", wantErr: "invalid pool VM id"},
		{name: "empty", stateDir: "/run", vmid: "", wantErr: "invalid pool VM id"},
		{name: "relative state dir", stateDir: "run", vmid: "vm1", wantErr: "not an absolute path"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := NewPool(tc.stateDir, tc.vmid)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if d.Path() != tc.stateDir+"/.pool/"+tc.vmid || d.ID() != tc.vmid || !d.Pool() || d.PoolID() != tc.vmid || d.LinkPath() != "" {
					t.Fatalf("path %s id %s pool %v %s link %q", d.Path(), d.ID(), d.Pool(), d.PoolID(), d.LinkPath())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errdefs.IsInvalidArgument(err) {
				t.Fatalf("NewPool(%q, %q) = %v, want InvalidArgument with %q", tc.stateDir, tc.vmid, err, tc.wantErr)
			}
		})
	}
}

func TestClaimed(t *testing.T) {
	pool, err := NewPool("/run/veil", "vm1")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := New("/run/veil", "sb1")
	if err != nil {
		t.Fatal(err)
	}
	claimed, err := pool.Claimed("sb1")
	if err != nil {
		t.Fatal(err)
	}
	if claimed.ID() != "sb1" || claimed.Path() != "/run/veil/.pool/vm1" || claimed.LinkPath() != "/run/veil/sb1" || claimed.PoolID() != "vm1" {
		t.Fatalf("claimed: id %s path %s link %s pool %s", claimed.ID(), claimed.Path(), claimed.LinkPath(), claimed.PoolID())
	}
	cases := []struct {
		name    string
		d       Dir
		id      string
		wantErr string
	}{
		{name: "plain directory", d: plain, id: "sb1", wantErr: "not a pool VM directory"},
		{name: "invalid id", d: pool, id: "../x", wantErr: "invalid sandbox id"},
		{name: "claimed by another", d: claimed, id: "sb2", wantErr: "sandbox sb1 claimed it already"},
		{name: "claimed again by the same", d: claimed, id: "sb1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.d.Claimed(tc.id)
			if tc.wantErr == "" {
				if err != nil || got != claimed {
					t.Fatalf("Claimed = %+v, %v, want %+v", got, err, claimed)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Claimed(%q) = %v, want error with %q", tc.id, err, tc.wantErr)
			}
		})
	}
}

// poolFixture is a state directory (a temp dir) with pool VM vm1 created
// and, beside it, a canary directory that nothing may touch.
type poolFixture struct {
	stateDir, canary string
	vm1              Dir
}

func newPoolFixture(t *testing.T) poolFixture {
	t.Helper()
	base := t.TempDir()
	f := poolFixture{stateDir: filepath.Join(base, "state"), canary: filepath.Join(base, "canary")}
	mkdirs(t, f.canary+"/sub")
	writeFiles(t, f.canary+"/keep", f.canary+"/sub/keep")
	var err error
	if f.vm1, err = NewPool(f.stateDir, "vm1"); err != nil {
		t.Fatal(err)
	}
	if err := Create(f.vm1); err != nil {
		t.Fatal(err)
	}
	// What a running VM leaves in its directory.
	mkdirs(t, f.vm1.File(sharedName)+"/c1/rootfs", f.vm1.File(HelperDir))
	writeFiles(t, f.vm1.PidFile("qemu"), f.vm1.File("qemu.log"), f.vm1.File(ConsoleLog))
	return f
}

func (f poolFixture) path(rel string) string { return filepath.Join(f.stateDir, rel) }

// canaryIntact fails t unless the canary holds what it held.
func (f poolFixture) canaryIntact(t *testing.T) {
	t.Helper()
	var got []string
	err := filepath.Walk(f.canary, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		got = append(got, strings.TrimPrefix(p, f.canary))
		return nil
	})
	if err != nil {
		t.Fatalf("canary: %v", err)
	}
	if want := []string{"", "/keep", "/sub", "/sub/keep"}; !slices.Equal(got, want) {
		t.Fatalf("canary now holds %q, want %q", got, want)
	}
}

func mkdirs(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func writeFiles(t *testing.T, files ...string) {
	t.Helper()
	for _, f := range files {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func gone(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there (%v)", p, err)
		}
	}
}

func there(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s is gone: %v", p, err)
		}
	}
}

// TestLinkOpen links sandbox sb1 to pool VM vm1 and finds it by id.
func TestLinkOpen(t *testing.T) {
	f := newPoolFixture(t)
	if err := Link(f.stateDir, "sb1", f.vm1); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(f.path("sb1")); err != nil || target != ".pool/vm1" {
		t.Fatalf("link: %q, %v", target, err)
	}
	d, err := Open(f.stateDir, "sb1")
	if err != nil {
		t.Fatal(err)
	}
	if d.ID() != "sb1" || d.Path() != f.vm1.Path() || d.LinkPath() != f.path("sb1") || d.PoolID() != "vm1" || !Exists(d) {
		t.Fatalf("Open: id %s path %s link %s pool %s exists %v", d.ID(), d.Path(), d.LinkPath(), d.PoolID(), Exists(d))
	}
	if claimed, _ := f.vm1.Claimed("sb1"); d != claimed {
		t.Fatalf("Open = %+v, Claimed = %+v", d, claimed)
	}

	plain, err := New(f.stateDir, "sb2")
	if err != nil {
		t.Fatal(err)
	}
	if err := Create(plain); err != nil {
		t.Fatal(err)
	}
	other, err := NewPool(f.stateDir, "vm2")
	if err != nil {
		t.Fatal(err)
	}
	elsewhere, err := NewPool(f.stateDir+"x", "vm1")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		id   string
		d    Dir
		want error
		msg  string
	}{
		{name: "id linked already", id: "sb1", d: f.vm1, want: errdefs.ErrAlreadyExists, msg: "veil sandbox cleanup sb1"},
		{name: "id has a directory", id: "sb2", d: f.vm1, want: errdefs.ErrAlreadyExists, msg: "a crashed one left it"},
		{name: "plain directory", id: "sb3", d: plain, want: errdefs.ErrInvalidArgument, msg: "not a pool VM directory"},
		{name: "pool dir of another state dir", id: "sb3", d: elsewhere, want: errdefs.ErrInvalidArgument, msg: "not a pool VM directory"},
		{name: "missing pool dir", id: "sb3", d: other, want: errdefs.ErrNotFound, msg: "no such pool VM directory"},
		{name: "invalid id", id: ".pool", d: f.vm1, want: errdefs.ErrInvalidArgument, msg: "invalid sandbox id"},
	}
	for _, tc := range cases {
		t.Run("Link/"+tc.name, func(t *testing.T) {
			err := Link(f.stateDir, tc.id, tc.d)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Link(%s, %s) = %v, want %v with %q", tc.id, tc.d.Path(), err, tc.want, tc.msg)
			}
		})
	}

	for _, tc := range []struct {
		name, id string
		exists   bool
	}{
		{name: "plain directory", id: "sb2", exists: true},
		{name: "nothing", id: "sb9"},
	} {
		t.Run("Open/"+tc.name, func(t *testing.T) {
			d, err := Open(f.stateDir, tc.id)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := New(f.stateDir, tc.id)
			if d != want || d.Pool() || Exists(d) != tc.exists {
				t.Fatalf("Open = %+v (exists %v), want New's %+v", d, Exists(d), want)
			}
		})
	}
}

// TestRemoveClaimed removes claimed pool directories, found by Open or
// made by Claimed, and what is left of them.
func TestRemoveClaimed(t *testing.T) {
	cases := []struct {
		name    string
		prepare func(t *testing.T, f poolFixture) Dir
		// gone and kept are paths relative to the state dir.
		gone, kept []string
	}{
		{name: "through Open", prepare: func(t *testing.T, f poolFixture) Dir {
			link(t, f, "sb1")
			return open(t, f, "sb1")
		}, gone: []string{"sb1", ".pool/vm1", ".pool"}},
		{name: "through Open, other VMs in the pool", prepare: func(t *testing.T, f poolFixture) Dir {
			link(t, f, "sb1")
			mkdirs(t, f.path(".pool/vm2"))
			if err := os.WriteFile(f.path(".pool/vm1.lock"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return open(t, f, "sb1")
		}, gone: []string{"sb1", ".pool/vm1", ".pool/vm1.lock"}, kept: []string{".pool/vm2"}},
		{name: "through Claimed", prepare: func(t *testing.T, f poolFixture) Dir {
			link(t, f, "sb1")
			d, err := f.vm1.Claimed("sb1")
			if err != nil {
				t.Fatal(err)
			}
			return d
		}, gone: []string{"sb1", ".pool/vm1", ".pool"}},
		{name: "claimed, never linked", prepare: func(t *testing.T, f poolFixture) Dir {
			d, err := f.vm1.Claimed("sb1")
			if err != nil {
				t.Fatal(err)
			}
			return d
		}, gone: []string{"sb1", ".pool/vm1"}},
		{name: "dangling link", prepare: func(t *testing.T, f poolFixture) Dir {
			link(t, f, "sb1")
			if err := os.RemoveAll(f.vm1.Path()); err != nil {
				t.Fatal(err)
			}
			d := open(t, f, "sb1")
			if Exists(d) || d.Path() != f.vm1.Path() {
				t.Fatalf("dangling link: %+v exists %v", d, Exists(d))
			}
			return d
		}, gone: []string{"sb1"}},
		{name: "dangling link, no .pool", prepare: func(t *testing.T, f poolFixture) Dir {
			link(t, f, "sb1")
			if err := os.RemoveAll(f.path(".pool")); err != nil {
				t.Fatal(err)
			}
			return open(t, f, "sb1")
		}, gone: []string{"sb1"}},
		{name: "link relinked to another pool VM", prepare: func(t *testing.T, f poolFixture) Dir {
			link(t, f, "sb1")
			d := open(t, f, "sb1")
			mkdirs(t, f.path(".pool/vm2"))
			if err := os.Remove(f.path("sb1")); err != nil {
				t.Fatal(err)
			}
			symlink(t, ".pool/vm2", f.path("sb1"))
			return d
		}, gone: []string{".pool/vm1"}, kept: []string{"sb1", ".pool/vm2"}},
		{name: "link replaced by a directory", prepare: func(t *testing.T, f poolFixture) Dir {
			link(t, f, "sb1")
			d := open(t, f, "sb1")
			if err := os.Remove(f.path("sb1")); err != nil {
				t.Fatal(err)
			}
			mkdirs(t, f.path("sb1"))
			return d
		}, gone: []string{".pool/vm1"}, kept: []string{"sb1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newPoolFixture(t)
			d := tc.prepare(t, f)
			if err := Remove(context.Background(), d); err != nil {
				t.Fatal(err)
			}
			for _, p := range tc.gone {
				gone(t, f.path(p))
			}
			for _, p := range tc.kept {
				there(t, f.path(p))
			}
			// Removing again finds nothing to do.
			if err := Remove(context.Background(), d); err != nil {
				t.Fatalf("second Remove: %v", err)
			}
			f.canaryIntact(t)
		})
	}
}

func TestPoolVMs(t *testing.T) {
	f := newPoolFixture(t)
	mkdirs(t, f.path(".pool/vm2"), f.path(".pool/.hidden"), f.path(".pool/bad id"))
	writeFiles(t, f.path(".pool/file"))
	symlink(t, f.canary, f.path(".pool/vm3"))
	link(t, f, "sb1")
	got, err := PoolVMs(f.stateDir)
	if err != nil || !slices.Equal(got, []string{"vm1", "vm2"}) {
		t.Fatalf("PoolVMs = %q, %v", got, err)
	}
	if got, err := PoolVMs(filepath.Join(t.TempDir(), "none")); err != nil || got != nil {
		t.Fatalf("PoolVMs of a missing state dir = %q, %v", got, err)
	}
}

// TestPoolShare is the whole life of a pool VM's directory with its
// share mounted: created below .pool, claimed, found by id, removed with
// its mounts and its link.
func TestPoolShare(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (mounts)")
	}
	ctx := context.Background()
	stateDir := t.TempDir()
	d, err := NewPool(stateDir, "vm1")
	if err != nil {
		t.Fatal(err)
	}
	if err := Create(d); err != nil {
		t.Fatal(err)
	}
	sh, err := CreateShare(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Remove(ctx, d) })
	_ = sh.Close()
	if err := Link(stateDir, "sb1", d); err != nil {
		t.Fatal(err)
	}
	got, err := Open(stateDir, "sb1")
	if err != nil {
		t.Fatal(err)
	}
	mps, err := HostMounts(got)
	if err != nil || len(mps) != 3 {
		t.Fatalf("mounts of the claimed directory: %q, %v", mps, err)
	}
	if err := Remove(ctx, got); err != nil {
		t.Fatal(err)
	}
	if mps, err := mountsUnder(stateDir); err != nil || len(mps) > 0 {
		t.Fatalf("mounts left: %q, %v", mps, err)
	}
	gone(t, d.Path(), filepath.Join(stateDir, "sb1"))
}

func link(t *testing.T, f poolFixture, id string) {
	t.Helper()
	if err := Link(f.stateDir, id, f.vm1); err != nil {
		t.Fatal(err)
	}
}

func open(t *testing.T, f poolFixture, id string) Dir {
	t.Helper()
	d, err := Open(f.stateDir, id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
