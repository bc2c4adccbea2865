package shim

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/config"
)

func TestVolumePolicy(t *testing.T) {
	cfg := config.Default()
	cfg.StateDir = "/run/veil/sandboxes"
	cfg.Volumes.AllowedHostPaths = []string{"/var/lib/kubelet", "/data"}
	p := newVolumePolicy(cfg, "pod1", "ctr1")
	for _, tc := range []struct {
		name, path string
		wantErr    string
	}{
		{"allowed dir", "/var/lib/kubelet/pods/x/volumes/v", ""},
		{"allowed root itself", "/data", ""},
		{"prefix is not a parent", "/database/x", "outside volumes.allowed_host_paths"},
		{"etc", "/etc/shadow", "outside volumes.allowed_host_paths"},
		{"pod's own CRI file", "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/pod1/hosts", ""},
		{"pod's own CRI file under another root", "/tmp/c/state/io.containerd.grpc.v1.cri/sandboxes/pod1/shm", ""},
		{"another pod's CRI file", "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/pod2/hosts", "outside"},
		{"container's own image volume", "/var/lib/containerd/io.containerd.grpc.v1.cri/containers/ctr1/volumes/abc", ""},
		{"pod's image volume", "/run/containerd/io.containerd.grpc.v1.cri/image-volumes/pod1/sha256x/etc", ""},
		{"another pod's image volume", "/run/containerd/io.containerd.grpc.v1.cri/image-volumes/pod2/sha256x", "outside"},
		{"another container's volume", "/var/lib/containerd/io.containerd.grpc.v1.cri/containers/ctr2/volumes/abc", "outside"},
		{"proc is denied", "/proc/1/root", "never shared"},
		{"dev is denied", "/dev/sda", "never shared"},
		{"state dir is denied", "/run/veil/sandboxes/other/shared", "never shared"},
		{"denied beats CRI path", "/proc/io.containerd.grpc.v1.cri/sandboxes/pod1/x", "never shared"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := p.check(tc.path)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("check(%s) = %v, want allowed", tc.path, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("check(%s) = %v, want error containing %q", tc.path, err, tc.wantErr)
			}
		})
	}
}

func TestPlanVolumes(t *testing.T) {
	policy := volumePolicy{podID: "pod1", containerID: "c1"}
	shm := "/run/containerd/io.containerd.grpc.v1.cri/sandboxes/pod1/shm"
	for _, tc := range []struct {
		name        string
		mounts      []specs.Mount
		wantVolumes []hostVolume
		wantMounts  []specs.Mount
	}{
		{
			name:       "non-bind mounts stay",
			mounts:     []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}, {Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"size=65536k"}}},
			wantMounts: []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"}, {Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"size=65536k"}}},
		},
		{
			name:   "binds are shared and re-pointed",
			mounts: []specs.Mount{{Destination: "/proc", Type: "proc"}, {Destination: "/data", Type: "bind", Source: "/var/lib/kubelet/x", Options: []string{"rbind", "ro"}}, {Destination: "/etc/hosts", Source: "/h/hosts", Options: []string{"bind", "rw"}}},
			wantVolumes: []hostVolume{
				{Source: "/var/lib/kubelet/x", Target: "/s/c1/mounts/1", ReadOnly: true, Recursive: true},
				{Source: "/h/hosts", Target: "/s/c1/mounts/2"},
			},
			wantMounts: []specs.Mount{{Destination: "/proc", Type: "proc"}, {Destination: "/data", Type: "bind", Source: api.SharedDir + "/c1/mounts/1", Options: []string{"rbind", "ro"}}, {Destination: "/etc/hosts", Source: api.SharedDir + "/c1/mounts/2", Options: []string{"bind", "rw"}}},
		},
		{
			name:       "the pod's shm becomes the guest's pod shm",
			mounts:     []specs.Mount{{Destination: "/dev/shm", Type: "bind", Source: shm, Options: []string{"rbind", "rw"}}},
			wantMounts: []specs.Mount{{Destination: "/dev/shm", Type: "bind", Source: api.PodShmDir, Options: []string{"rbind", "rw"}}},
		},
		{
			name:        "another pod's shm is an ordinary volume",
			mounts:      []specs.Mount{{Destination: "/dev/shm", Type: "bind", Source: "/x/io.containerd.grpc.v1.cri/sandboxes/pod2/shm"}},
			wantVolumes: []hostVolume{{Source: "/x/io.containerd.grpc.v1.cri/sandboxes/pod2/shm", Target: "/s/c1/mounts/0"}},
			wantMounts:  []specs.Mount{{Destination: "/dev/shm", Type: "bind", Source: api.SharedDir + "/c1/mounts/0"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := planVolumes(tc.mounts, policy, "/s/c1", api.SharedDir+"/c1")
			if !reflect.DeepEqual(plan.Volumes, tc.wantVolumes) {
				t.Errorf("volumes\n got %+v\nwant %+v", plan.Volumes, tc.wantVolumes)
			}
			if !reflect.DeepEqual(plan.Mounts, tc.wantMounts) {
				t.Errorf("mounts\n got %+v\nwant %+v", plan.Mounts, tc.wantMounts)
			}
		})
	}
}

func TestReadResolvConf(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content string
		want          *api.DNS
	}{
		{"full", "# comment\nnameserver 10.0.0.10\nnameserver 8.8.8.8\nsearch a.svc b.svc\noptions ndots:5 edns0\n", &api.DNS{Servers: []string{"10.0.0.10", "8.8.8.8"}, Searches: []string{"a.svc", "b.svc"}, Options: []string{"ndots:5", "edns0"}}},
		{"empty", "", nil},
		{"comments only", "; x\n# y\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			got := readResolvConf(specs.Mount{Source: p})
			if (got == nil) != (tc.want == nil) || (got != nil && (!reflect.DeepEqual(got.Servers, tc.want.Servers) || !reflect.DeepEqual(got.Searches, tc.want.Searches) || !reflect.DeepEqual(got.Options, tc.want.Options))) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestWantedSize(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	u64 := func(v uint64) *uint64 { return &v }
	for _, tc := range []struct {
		name      string
		res       specs.LinuxResources
		wantCPUs  uint32
		wantMemMB uint64
	}{
		{"nothing", specs.LinuxResources{}, 0, 0},
		{"quota 1.5 cpus", specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(150000), Period: u64(100000)}}, 2, 0},
		{"unlimited quota", specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(-1), Period: u64(100000)}}, 0, 0},
		{"memory rounds up", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(512<<20 + 1)}}, 0, 513},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, m := wantedSize(&tc.res)
			if c != tc.wantCPUs || m != tc.wantMemMB {
				t.Fatalf("wantedSize = %d, %d; want %d, %d", c, m, tc.wantCPUs, tc.wantMemMB)
			}
		})
	}
}

// TestHostMounterBind binds real files and directories, so it needs root.
func TestHostMounterBind(t *testing.T) {
	if os.Getenv("VEIL_INTEGRATION") != "1" {
		t.Skip("needs root to mount; set VEIL_INTEGRATION=1")
	}
	root := t.TempDir()
	allowed := filepath.Join(root, "allowed")
	secret := filepath.Join(root, "secret")
	for _, d := range []string{allowed, secret} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(allowed, "file"), []byte("hello"), 0o644))
	must(os.Mkdir(filepath.Join(allowed, "dir"), 0o755))
	must(os.WriteFile(filepath.Join(secret, "key"), []byte("secret"), 0o600))
	must(os.Symlink(filepath.Join(secret, "key"), filepath.Join(allowed, "escape")))
	policy := volumePolicy{allowed: []string{allowed}}

	for _, tc := range []struct {
		name     string
		source   string
		readOnly bool
		wantErr  string
		check    func(t *testing.T, target string)
	}{
		{name: "file rw", source: "file", check: func(t *testing.T, target string) {
			if b, err := os.ReadFile(target); err != nil || string(b) != "hello" {
				t.Fatalf("read %s = %q, %v", target, b, err)
			}
		}},
		{name: "dir ro", source: "dir", readOnly: true, check: func(t *testing.T, target string) {
			err := os.WriteFile(filepath.Join(target, "x"), nil, 0o644)
			if !errors.Is(err, unix.EROFS) {
				t.Fatalf("write into read-only bind: %v, want EROFS", err)
			}
		}},
		{name: "symlink out of the allowed dir", source: "escape", wantErr: "outside volumes.allowed_host_paths"},
		{name: "missing source", source: "nope", wantErr: "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			share := t.TempDir()
			target := filepath.Join(share, "c", "rootfs")
			v := hostVolume{Source: filepath.Join(allowed, tc.source), Target: filepath.Join(share, "c", "mounts", "0"), ReadOnly: tc.readOnly}
			err := hostMounter{}.Bind(v, policy)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Bind = %v, want error containing %q", err, tc.wantErr)
				}
				if strings.Contains(tc.wantErr, "allowed") && !errdefs.IsInvalidArgument(err) {
					t.Fatalf("Bind = %v, want InvalidArgument", err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				tc.check(t, v.Target)
			}
			if err := (hostMounter{}).Unmount(target); err != nil {
				t.Fatalf("Unmount: %v", err)
			}
			if _, err := os.Stat(filepath.Join(share, "c")); !os.IsNotExist(err) {
				t.Fatalf("container dir left behind: %v", err)
			}
		})
	}
	if b, err := os.ReadFile(filepath.Join(allowed, "file")); err != nil || string(b) != "hello" {
		t.Fatalf("source changed: %q, %v", b, err)
	}
}

func TestCheckPodNamespaces(t *testing.T) {
	sandbox := map[string]string{annotationContainerType: containerTypeSandbox, annotationSandboxID: "pod1"}
	nss := func(ts ...specs.LinuxNamespaceType) []specs.LinuxNamespace {
		var out []specs.LinuxNamespace
		for _, t := range ts {
			out = append(out, specs.LinuxNamespace{Type: t})
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		ann     map[string]string
		ns      []specs.LinuxNamespace
		wantErr string
	}{
		{"pod network and IPC", sandbox, nss(specs.NetworkNamespace, specs.IPCNamespace, specs.PIDNamespace), ""},
		{"hostPID is fine", sandbox, nss(specs.NetworkNamespace, specs.IPCNamespace), ""},
		{"hostNetwork", sandbox, nss(specs.IPCNamespace), "network (hostNetwork)"},
		{"hostIPC", sandbox, nss(specs.NetworkNamespace), "IPC (hostIPC)"},
		{"not a CRI sandbox (ctr run)", nil, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bs := &bundleSpec{Spec: specs.Spec{Annotations: tc.ann, Linux: &specs.Linux{Namespaces: tc.ns}}}
			err := checkPodNamespaces(bs)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errdefs.IsInvalidArgument(err) {
				t.Fatalf("err = %v, want InvalidArgument naming %q", err, tc.wantErr)
			}
		})
	}
}
