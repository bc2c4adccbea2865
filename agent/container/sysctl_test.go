package container

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestApplySysctls(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      map[string]string
		wantErr string
		want    map[string]string // relative file -> content
	}{
		{name: "net keys", in: map[string]string{"net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647"},
			want: map[string]string{"net/ipv4/ip_unprivileged_port_start": "0", "net/ipv4/ping_group_range": "0 2147483647"}},
		{name: "non-net key", in: map[string]string{"kernel.shmmax": "1"}, wantErr: "only net.*"},
		{name: "dot dot", in: map[string]string{"net....kernel.x": "1"}, wantErr: "only net.*"},
		{name: "nothing", in: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for f := range tc.want {
				if err := os.MkdirAll(filepath.Join(root, filepath.Dir(f)), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			err := applySysctls(context.Background(), root, tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for f, v := range tc.want {
				b, err := os.ReadFile(filepath.Join(root, f))
				if err != nil || string(b) != v {
					t.Fatalf("%s = %q, %v; want %q", f, b, err, v)
				}
			}
		})
	}
}

func TestRewriteSpecNetSysctls(t *testing.T) {
	for _, tc := range []struct {
		name      string
		netns     *specs.LinuxNamespace
		wantMoved bool
	}{
		{name: "pod network: net sysctls go to the guest", netns: &specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/var/run/netns/cni-1"}, wantMoved: true},
		{name: "own new netns: net sysctls stay", netns: &specs.LinuxNamespace{Type: specs.NetworkNamespace}, wantMoved: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &specs.Spec{Process: &specs.Process{Args: []string{"sh"}}, Linux: &specs.Linux{
				Namespaces: []specs.LinuxNamespace{*tc.netns},
				Sysctl:     map[string]string{"net.ipv4.ip_unprivileged_port_start": "0", "kernel.msgmax": "8192"},
			}}
			rw, err := RewriteSpec(s, "c1", RewriteOptions{Rootfs: "/run/veil/shared/c1/rootfs", SharedDir: "/run/veil/shared"})
			if err != nil {
				t.Fatal(err)
			}
			_, inSpec := s.Linux.Sysctl["net.ipv4.ip_unprivileged_port_start"]
			_, moved := rw.NetSysctls["net.ipv4.ip_unprivileged_port_start"]
			if moved != tc.wantMoved || inSpec == tc.wantMoved {
				t.Fatalf("moved=%v inSpec=%v, want moved=%v", moved, inSpec, tc.wantMoved)
			}
			if s.Linux.Sysctl["kernel.msgmax"] != "8192" {
				t.Fatalf("kernel.msgmax lost: %v", s.Linux.Sysctl)
			}
		})
	}
}
