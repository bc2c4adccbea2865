package inspect

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKernelRelease(t *testing.T) {
	cases := []struct {
		name    string
		content string
		want    string
		wantErr string
	}{
		{"banner", "\x7fELF....Linux version 6.1.192-veil (root@build) #1 SMP", "6.1.192-veil", ""},
		{"format string first", "Linux version %s (%s)\x00....Linux version 6.1.0-56-cloud-amd64 (debian-kernel@lists.debian.org)", "6.1.0-56-cloud-amd64", ""},
		{"across the read boundary", strings.Repeat("x", 1<<20-5) + "Linux version 6.12.1 (x)", "6.12.1", ""},
		{"no banner", "just bytes", "", "no Linux version banner"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "vmlinux")
			if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := KernelRelease(p)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("KernelRelease = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
