package guest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseModuleList(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		want    []string
		wantErr string
	}{
		{name: "empty", in: "", want: nil},
		{name: "order kept, blanks and comments skipped", in: "# vsock first\nkernel/net/vmw_vsock/vsock.ko\n\n  kernel/fs/fuse/virtiofs.ko  \n", want: []string{"kernel/net/vmw_vsock/vsock.ko", "kernel/fs/fuse/virtiofs.ko"}},
		{name: "compressed names", in: "kernel/fs/overlayfs/overlay.ko.xz\n", want: []string{"kernel/fs/overlayfs/overlay.ko.xz"}},
		{name: "paths are cleaned", in: "kernel//fs/./a.ko\n", want: []string{"kernel/fs/a.ko"}},
		{name: "absolute path refused", in: "/lib/modules/x.ko\n", wantErr: "line 1"},
		{name: "escape refused", in: "a.ko\n../../etc/x.ko\n", wantErr: "line 2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseModuleList(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestModuleFlags(t *testing.T) {
	cases := []struct {
		name string
		want int
	}{
		{"a.ko", 0},
		{"a.ko.xz", unix.MODULE_INIT_COMPRESSED_FILE},
		{"a.ko.zst", unix.MODULE_INIT_COMPRESSED_FILE},
		{"a.ko.gz", unix.MODULE_INIT_COMPRESSED_FILE},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := moduleFlags(tc.name); got != tc.want {
				t.Fatalf("moduleFlags(%q) = %d, want %d", tc.name, got, tc.want)
			}
		})
	}
}

func TestLoadModulesMissingList(t *testing.T) {
	if err := LoadModules(context.Background(), filepath.Join(t.TempDir(), "none"), "/nonexistent"); err != nil {
		t.Fatalf("missing list: %v", err)
	}
}

func TestLoadModulesReportsMissingFile(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "modules")
	if err := os.WriteFile(list, []byte("kernel/missing.ko\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := LoadModules(context.Background(), list, dir)
	if err == nil || !strings.Contains(err.Error(), "missing.ko") {
		t.Fatalf("err = %v, want one naming missing.ko", err)
	}
}
