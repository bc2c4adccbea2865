package container

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func baseSpec() *specs.Spec {
	return &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: "/host/bundle/rootfs"},
		Process: &specs.Process{Args: []string{"sh"}, Cwd: "/", ApparmorProfile: "cri-default"},
		Hooks:   &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/usr/bin/host-hook"}}},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/etc/hosts", Type: "bind", Source: "/var/lib/containerd/hosts", Options: []string{"rbind", "ro"}},
			{Destination: "/data", Source: "/run/veil/shared/c1/volume", Options: []string{"rbind"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: "/default/c1",
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.NetworkNamespace, Path: "/var/run/netns/cni-123"},
				{Type: specs.IPCNamespace, Path: "/proc/42/ns/ipc"},
				{Type: specs.MountNamespace},
			},
			Seccomp: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno},
		},
	}
}

func TestRewriteSpec(t *testing.T) {
	cases := []struct {
		name   string
		modify func(*specs.Spec)
		opts   RewriteOptions
		check  func(t *testing.T, s *specs.Spec)
	}{
		{
			name: "root path is the guest rootfs",
			opts: RewriteOptions{Rootfs: "/run/veil/shared/c1/rootfs/", SharedDir: "/run/veil/shared"},
			check: func(t *testing.T, s *specs.Spec) {
				if s.Root.Path != "/run/veil/shared/c1/rootfs" {
					t.Fatalf("root = %q", s.Root.Path)
				}
			},
		},
		{
			name: "namespace paths join the pod container's namespaces",
			opts: RewriteOptions{Rootfs: "/run/veil/shared/c1/rootfs", SharedDir: "/run/veil/shared", PodNamespaces: map[specs.LinuxNamespaceType]string{
				specs.IPCNamespace: "/proc/7/ns/ipc", specs.UTSNamespace: "/proc/7/ns/uts", specs.PIDNamespace: "/proc/7/ns/pid",
			}},
			check: func(t *testing.T, s *specs.Spec) {
				want := []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace, Path: "/proc/7/ns/ipc"}, {Type: specs.MountNamespace}, {Type: specs.CgroupNamespace}}
				if len(s.Linux.Namespaces) != len(want) {
					t.Fatalf("namespaces = %+v", s.Linux.Namespaces)
				}
				for i := range want {
					if s.Linux.Namespaces[i] != want[i] {
						t.Fatalf("namespaces = %+v, want %+v", s.Linux.Namespaces, want)
					}
				}
			},
		},
		{
			name: "binds from the pod shm stay, other guest paths go",
			modify: func(s *specs.Spec) {
				s.Mounts = []specs.Mount{{Destination: "/dev/shm", Type: "bind", Source: "/run/veil/shm"}, {Destination: "/x", Type: "bind", Source: "/run/veil/other"}}
			},
			opts: RewriteOptions{Rootfs: "/run/veil/shared/c1/rootfs", SharedDir: "/run/veil/shared", PodShmDir: "/run/veil/shm"},
			check: func(t *testing.T, s *specs.Spec) {
				if len(s.Mounts) != 1 || s.Mounts[0].Source != "/run/veil/shm" {
					t.Fatalf("mounts = %+v", s.Mounts)
				}
			},
		},
		{
			name: "network namespace path joins the guest network, other paths become new namespaces",
			opts: RewriteOptions{Rootfs: "/run/veil/shared/c1/rootfs", SharedDir: "/run/veil/shared"},
			check: func(t *testing.T, s *specs.Spec) {
				want := []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.MountNamespace}, {Type: specs.CgroupNamespace}}
				if len(s.Linux.Namespaces) != len(want) {
					t.Fatalf("namespaces = %+v", s.Linux.Namespaces)
				}
				for i := range want {
					if s.Linux.Namespaces[i] != want[i] {
						t.Fatalf("namespace %d = %+v, want %+v", i, s.Linux.Namespaces[i], want[i])
					}
				}
			},
		},
		{
			name: "pathless network namespace stays new",
			modify: func(s *specs.Spec) {
				s.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.NetworkNamespace}}
			},
			opts: RewriteOptions{Rootfs: "/run/veil/shared/c1/rootfs", SharedDir: "/run/veil/shared"},
			check: func(t *testing.T, s *specs.Spec) {
				if len(s.Linux.Namespaces) != 2 || s.Linux.Namespaces[0].Type != specs.NetworkNamespace || s.Linux.Namespaces[1].Type != specs.CgroupNamespace {
					t.Fatalf("namespaces = %+v", s.Linux.Namespaces)
				}
			},
		},
		{
			name: "host binds and hooks go, shared binds stay",
			opts: RewriteOptions{Rootfs: "/run/veil/shared/c1/rootfs", SharedDir: "/run/veil/shared"},
			check: func(t *testing.T, s *specs.Spec) {
				if s.Hooks != nil {
					t.Fatal("hooks kept")
				}
				var dests []string
				for _, m := range s.Mounts {
					dests = append(dests, m.Destination)
				}
				if strings.Join(dests, ",") != "/proc,/data" {
					t.Fatalf("mounts = %v", dests)
				}
				if s.Process.ApparmorProfile != "" {
					t.Fatal("apparmor profile kept")
				}
			},
		},
		{
			name: "seccomp dropped only without support",
			opts: RewriteOptions{Rootfs: "/run/veil/shared/c1/rootfs", SharedDir: "/run/veil/shared", Seccomp: true},
			check: func(t *testing.T, s *specs.Spec) {
				if s.Linux.Seccomp == nil {
					t.Fatal("seccomp dropped although supported")
				}
				if !slices.ContainsFunc(s.Linux.Seccomp.Syscalls, isVsockDeny) {
					t.Fatalf("profile without the AF_VSOCK denial: %+v", s.Linux.Seccomp)
				}
			},
		},
		{
			name:   "an unconfined container gets the AF_VSOCK denial",
			modify: func(s *specs.Spec) { s.Linux.Seccomp = nil },
			opts:   RewriteOptions{Rootfs: "/run/veil/shared/c1/rootfs", SharedDir: "/run/veil/shared", Seccomp: true},
			check: func(t *testing.T, s *specs.Spec) {
				if sc := s.Linux.Seccomp; sc == nil || sc.DefaultAction != specs.ActAllow || !slices.ContainsFunc(sc.Syscalls, isVsockDeny) {
					t.Fatalf("seccomp = %+v, want allow-all with the AF_VSOCK denial", sc)
				}
			},
		},
		{
			name: "without seccomp support the profile goes",
			opts: RewriteOptions{Rootfs: "/run/veil/shared/c1/rootfs", SharedDir: "/run/veil/shared"},
			check: func(t *testing.T, s *specs.Spec) {
				if s.Linux.Seccomp != nil {
					t.Fatalf("seccomp = %+v", s.Linux.Seccomp)
				}
			},
		},
		{
			name:   "systemd cgroups path becomes a cgroupfs path",
			modify: func(s *specs.Spec) { s.Linux.CgroupsPath = "system.slice:cri:c1" },
			opts:   RewriteOptions{Rootfs: "/run/veil/shared/c1/rootfs", SharedDir: "/run/veil/shared"},
			check: func(t *testing.T, s *specs.Spec) {
				if s.Linux.CgroupsPath != "/veil/c1" {
					t.Fatalf("cgroups path = %q", s.Linux.CgroupsPath)
				}
			},
		},
		{
			name:   "relative cgroups path is made absolute and clean",
			modify: func(s *specs.Spec) { s.Linux.CgroupsPath = "k8s/../pod//c1" },
			opts:   RewriteOptions{Rootfs: "/run/veil/shared/c1/rootfs", SharedDir: "/run/veil/shared"},
			check: func(t *testing.T, s *specs.Spec) {
				if s.Linux.CgroupsPath != "/pod/c1" {
					t.Fatalf("cgroups path = %q", s.Linux.CgroupsPath)
				}
			},
		},
		{
			name:   "no linux section gets a default cgroup",
			modify: func(s *specs.Spec) { s.Linux = nil },
			opts:   RewriteOptions{Rootfs: "/run/veil/shared/c1/rootfs", SharedDir: "/run/veil/shared", Terminal: true},
			check: func(t *testing.T, s *specs.Spec) {
				if s.Linux.CgroupsPath != "/veil/c1" || !s.Process.Terminal {
					t.Fatalf("cgroups path = %q terminal %v", s.Linux.CgroupsPath, s.Process.Terminal)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := baseSpec()
			if tc.modify != nil {
				tc.modify(s)
			}
			if _, err := RewriteSpec(s, "c1", tc.opts); err != nil {
				t.Fatal(err)
			}
			tc.check(t, s)
		})
	}
}

func TestRewriteSpecRejectsRelativeRootfs(t *testing.T) {
	_, err := RewriteSpec(baseSpec(), "c1", RewriteOptions{Rootfs: "rootfs"})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("err = %v, want InvalidArgument", err)
	}
}

func TestParseSpec(t *testing.T) {
	good, err := json.Marshal(baseSpec())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		in      string
		wantErr string
	}{
		{name: "valid", in: string(good)},
		{name: "empty", in: "", wantErr: "empty"},
		{name: "bad json", in: `{"process": `, wantErr: "parse OCI spec (12 bytes)"},
		{name: "wrong type", in: `{"process": 7}`, wantErr: "parse OCI spec"},
		{name: "no process", in: `{"root": {"path": "/"}}`, wantErr: "no process"},
		{name: "no args", in: `{"process": {"cwd": "/"}}`, wantErr: "no args"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSpec([]byte(tc.in))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("err = %v, want InvalidArgument containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseProcess(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{name: "valid", in: `{"args":["sh","-c","true"],"cwd":"/"}`},
		{name: "bad json", in: `{"args":`, wantErr: true},
		{name: "no args", in: `{"cwd":"/"}`, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseProcess([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
		})
	}
}

func TestToLibcontainer(t *testing.T) {
	cases := []struct {
		name    string
		p       specs.Process
		wantErr bool
	}{
		{name: "rlimits and groups", p: specs.Process{Args: []string{"sh"}, User: specs.User{UID: 1, GID: 2, AdditionalGids: []uint32{3}}, Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 10, Soft: 5}}}},
		{name: "unknown rlimit", p: specs.Process{Args: []string{"sh"}, Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_BOGUS"}}}, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lp, err := toLibcontainer(&tc.p, false)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && (lp.UID != 1 || lp.GID != 2 || len(lp.AdditionalGroups) != 1 || lp.Cwd != "/" || len(lp.Rlimits) != 1) {
				t.Fatalf("converted = %+v", lp)
			}
		})
	}
}
