package statedir

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// hostileTree builds, below a fresh share root, the kinds of tree a guest
// would plant if it could write to the share, and a canary outside that
// must survive everything.
type hostileTree struct {
	root   *os.File
	canary string
}

func newHostileTree(t *testing.T) hostileTree {
	t.Helper()
	base := t.TempDir()
	canary := filepath.Join(base, "canary")
	share := filepath.Join(base, "share")
	for _, d := range []string{canary + "/sub", share} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{canary + "/keep", canary + "/sub/keep"} {
		if err := os.WriteFile(f, []byte("canary"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root, err := openRoot(share)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = root.Close() })
	return hostileTree{root: root, canary: canary}
}

func (h hostileTree) path(rel string) string { return filepath.Join(h.root.Name(), rel) }

func (h hostileTree) mkdir(t *testing.T, rel string) {
	t.Helper()
	if err := os.MkdirAll(h.path(rel), 0o755); err != nil {
		t.Fatal(err)
	}
}

func (h hostileTree) symlink(t *testing.T, target, rel string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(h.path(rel)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, h.path(rel)); err != nil {
		t.Fatal(err)
	}
}

// canaryIntact fails t unless the canary holds exactly what it held.
func (h hostileTree) canaryIntact(t *testing.T) {
	t.Helper()
	var got []string
	err := filepath.Walk(h.canary, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		got = append(got, p[len(h.canary):])
		return nil
	})
	if err != nil {
		t.Fatalf("canary: %v", err)
	}
	want := []string{"", "/keep", "/sub", "/sub/keep"}
	if !slices.Equal(got, want) {
		t.Fatalf("canary now holds %q, want %q", got, want)
	}
}

// TestOpenBeneathRefusesEscapes resolves every kind of planted path and
// wants each refused, at every level of a container's directory.
func TestOpenBeneathRefusesEscapes(t *testing.T) {
	for _, level := range []string{"c1", "c1/mounts", "c1/mounts/0"} {
		cases := []struct {
			name  string
			plant func(h hostileTree, t *testing.T)
			rel   string
			want  error
		}{
			{name: "absolute symlink", plant: func(h hostileTree, t *testing.T) { h.symlink(t, h.canary, level) }, rel: level, want: unix.ELOOP},
			{name: "relative symlink up", plant: func(h hostileTree, t *testing.T) { h.symlink(t, "../../../../../../../../"+h.canary, level) }, rel: level, want: unix.ELOOP},
			{name: "symlink to root", plant: func(h hostileTree, t *testing.T) { h.symlink(t, "/", level) }, rel: level + "/etc", want: unix.ELOOP},
			{name: "dot dot in path", plant: func(h hostileTree, t *testing.T) { h.mkdir(t, level) }, rel: level + "/../../../..", want: nil},
			{name: "magic link", plant: func(h hostileTree, t *testing.T) { h.symlink(t, "/proc/self/root", level) }, rel: level, want: unix.ELOOP},
		}
		for _, tc := range cases {
			t.Run(level+"/"+tc.name, func(t *testing.T) {
				h := newHostileTree(t)
				tc.plant(h, t)
				f, err := openBeneath(h.root, tc.rel, unix.O_PATH)
				if err == nil {
					_ = f.Close()
					t.Fatalf("openBeneath(%q) succeeded", tc.rel)
				}
				if tc.want != nil && !errors.Is(err, tc.want) {
					t.Fatalf("openBeneath(%q) = %v, want %v", tc.rel, err, tc.want)
				}
				if _, err := mkdirBeneath(h.root, tc.rel, 0o755); err == nil {
					t.Fatalf("mkdirBeneath(%q) succeeded", tc.rel)
				}
				h.canaryIntact(t)
			})
		}
	}
}

// TestRemoveTreeHostile removes trees holding symlinks (to the canary, to
// /, up with ..) and junk at every level: everything below the share goes,
// nothing outside is touched, no link is followed.
func TestRemoveTreeHostile(t *testing.T) {
	cases := []struct {
		name  string
		plant func(h hostileTree, t *testing.T)
	}{
		{name: "container dir is a symlink", plant: func(h hostileTree, t *testing.T) { h.symlink(t, h.canary, "c1") }},
		{name: "mounts is a symlink", plant: func(h hostileTree, t *testing.T) { h.mkdir(t, "c1/rootfs"); h.symlink(t, h.canary, "c1/mounts") }},
		{name: "volume is a symlink to /", plant: func(h hostileTree, t *testing.T) { h.symlink(t, "/", "c1/mounts/0") }},
		{name: "relative symlinks up at every level", plant: func(h hostileTree, t *testing.T) {
			h.symlink(t, "../../../../../../"+h.canary, "c1/up")
			h.symlink(t, "../../../../../../"+h.canary, "c1/mounts/up")
			h.symlink(t, "../../../../../../"+h.canary, "c1/mounts/0/up")
		}},
		{name: "junk files and directories", plant: func(h hostileTree, t *testing.T) {
			h.mkdir(t, "c1/mounts/junk/deeper/still")
			for _, f := range []string{"c1/x", "c1/mounts/junk/f", "c1/mounts/junk/deeper/still/f"} {
				if err := os.WriteFile(h.path(f), []byte("junk"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := unix.Mkfifo(h.path("c1/mounts/fifo"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "unreadable directory", plant: func(h hostileTree, t *testing.T) {
			h.mkdir(t, "c1/mounts/locked/in")
			if err := os.Chmod(h.path("c1/mounts/locked"), 0); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHostileTree(t)
			tc.plant(h, t)
			left, err := removeTree(h.root, "c1")
			if err != nil {
				t.Fatal(err)
			}
			if len(left) > 0 && os.Geteuid() == 0 {
				t.Fatalf("left: %q", left)
			}
			if os.Geteuid() == 0 {
				if _, err := os.Lstat(h.path("c1")); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("c1 still there: %v", err)
				}
			}
			h.canaryIntact(t)
		})
	}
}

// TestRemoveTreeSwappedDirectory swaps a directory for a symlink after
// removeTree looked at it (between its fstatat and its open): the open,
// beneath-resolved without symlinks, refuses, and the canary survives.
func TestRemoveTreeSwappedDirectory(t *testing.T) {
	h := newHostileTree(t)
	h.mkdir(t, "c1/mounts")
	var st unix.Stat_t
	if err := unix.Fstatat(int(h.root.Fd()), "c1", &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Fatalf("c1 should be a directory now: %v", err)
	}
	// The swap.
	if err := os.RemoveAll(h.path("c1")); err != nil {
		t.Fatal(err)
	}
	h.symlink(t, h.canary, "c1")
	// What removeEntry does next: open it to read its entries.
	if f, err := openBeneath(h.root, "c1", unix.O_RDONLY|unix.O_DIRECTORY); err == nil {
		_ = f.Close()
		t.Fatal("opened a directory that is now a symlink")
	}
	// And the whole removal, started after the swap, unlinks the link only.
	left, err := removeTree(h.root, "c1")
	if err != nil || len(left) > 0 {
		t.Fatalf("removeTree: %q, %v", left, err)
	}
	h.canaryIntact(t)
}

// TestDialUnixRefusesSymlink: a helper that owns the socket directory
// replaces its socket with a link to another (a host daemon's): the host
// does not connect through it.
func TestDialUnixRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "daemon.sock")
	ln, err := net.Listen("unix", other)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	cases := []struct {
		name    string
		setup   func(t *testing.T, p string)
		wantErr bool
	}{
		{name: "socket", setup: func(t *testing.T, p string) { l, _ := net.Listen("unix", p); t.Cleanup(func() { _ = l.Close() }) }},
		{name: "symlink to a socket", setup: func(t *testing.T, p string) {
			if err := os.Symlink(other, p); err != nil {
				t.Fatal(err)
			}
		}, wantErr: true},
		{name: "regular file", setup: func(t *testing.T, p string) {
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, wantErr: true},
		{name: "missing", setup: func(*testing.T, string) {}, wantErr: true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, fmt.Sprintf("s%d.sock", i))
			tc.setup(t, p)
			c, err := DialUnix(context.Background(), p)
			if (err != nil) != tc.wantErr {
				t.Fatalf("DialUnix: %v, want error %v", err, tc.wantErr)
			}
			if c != nil {
				_ = c.Close()
			}
		})
	}
}
