package virtiofs

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const sampleMountinfo = `22 1 0:21 / / rw - ext4 /dev/root rw
30 22 0:25 / /run rw shared:5 - tmpfs tmpfs rw
40 30 0:25 /veil/sb/shared /run/veil/sb/shared rw shared:9 - tmpfs tmpfs rw
41 40 0:30 / /run/veil/sb/shared/c1/rootfs rw shared:9 - overlay overlay rw
42 40 0:31 / /run/veil/sb/shared/with\040space rw - tmpfs tmpfs rw
43 30 0:32 / /run/veil/sb/shared2 rw - tmpfs tmpfs rw
`

func TestMountsUnder(t *testing.T) {
	cases := []struct {
		name string
		dir  string
		want []string
	}{
		{name: "dir and children in order", dir: "/run/veil/sb/shared", want: []string{"/run/veil/sb/shared", "/run/veil/sb/shared/c1/rootfs", "/run/veil/sb/shared/with space"}},
		{name: "trailing slash cleaned by caller", dir: "/run/veil/sb/shared/c1", want: []string{"/run/veil/sb/shared/c1/rootfs"}},
		{name: "sibling prefix not matched", dir: "/run/veil/sb/shared2", want: []string{"/run/veil/sb/shared2"}},
		{name: "nothing", dir: "/nope", want: nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mountsUnder(strings.NewReader(sampleMountinfo), tc.dir)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestUnescape(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{name: "plain", in: "/a/b", want: "/a/b"},
		{name: "space", in: `/a\040b`, want: "/a b"},
		{name: "backslash", in: `/a\134b`, want: `/a\b`},
		{name: "truncated escape kept", in: `/a\04`, want: `/a\04`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := unescape(tc.in); got != tc.want {
				t.Fatalf("unescape(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestSharedDirLifecycle needs root (mount).
func TestSharedDirLifecycle(t *testing.T) {
	if os.Getenv("VEIL_INTEGRATION") != "1" || os.Geteuid() != 0 {
		t.Skip("needs root and VEIL_INTEGRATION=1 (mounts)")
	}
	dir := filepath.Join(t.TempDir(), "shared")
	if err := PrepareSharedDir(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { UnmountAll(dir) })
	sub := filepath.Join(dir, "c1", "rootfs")
	src := t.TempDir()
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(src, sub, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	// Stack a second mount on the same point.
	if err := unix.Mount(src, sub, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	got, err := MountsUnder(dir)
	if err != nil || len(got) != 3 {
		t.Fatalf("mounts = %q, %v; want 3", got, err)
	}
	if err := UnmountAll(dir); err != nil {
		t.Fatal(err)
	}
	if got, _ := MountsUnder(dir); len(got) != 0 {
		t.Fatalf("left mounted: %q", got)
	}
}
