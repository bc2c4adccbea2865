package bundle

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/config"
)

func TestVolumePolicy(t *testing.T) {
	cfg := config.Default()
	cfg.StateDir = "/run/veil/sandboxes"
	cfg.Volumes.AllowedHostPaths = []string{"/var/lib/kubelet", "/data"}
	p := NewVolumePolicy(cfg, "pod1", "ctr1")
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
	policy := VolumePolicy{podID: "pod1", containerID: "c1"}
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
				{Source: "/var/lib/kubelet/x", Name: "1", ReadOnly: true, Recursive: true},
				{Source: "/h/hosts", Name: "2"},
			},
			wantMounts: []specs.Mount{{Destination: "/proc", Type: "proc"}, {Destination: "/data", Type: "bind", Source: api.SharedDir + "/c1/mounts/1", Options: []string{"rbind", "ro"}}, {Destination: "/etc/hosts", Source: api.SharedDir + "/c1/mounts/2", Options: []string{"bind", "rw"}}},
		},
		{
			name:        "rro is recursively read-only",
			mounts:      []specs.Mount{{Destination: "/data", Type: "bind", Source: "/var/lib/kubelet/y", Options: []string{"rbind", "rro", "rslave"}}},
			wantVolumes: []hostVolume{{Source: "/var/lib/kubelet/y", Name: "0", RecursiveReadOnly: true, Recursive: true, HostToGuest: true}},
			wantMounts:  []specs.Mount{{Destination: "/data", Type: "bind", Source: api.SharedDir + "/c1/mounts/0", Options: []string{"rbind", "rro", "rslave"}}},
		},
		{
			name:       "the pod's shm becomes the guest's pod shm",
			mounts:     []specs.Mount{{Destination: "/dev/shm", Type: "bind", Source: shm, Options: []string{"rbind", "rw"}}},
			wantMounts: []specs.Mount{{Destination: "/dev/shm", Type: "bind", Source: api.PodShmDir, Options: []string{"rbind", "rw"}}},
		},
		{
			name:        "another pod's shm is an ordinary volume",
			mounts:      []specs.Mount{{Destination: "/dev/shm", Type: "bind", Source: "/x/io.containerd.grpc.v1.cri/sandboxes/pod2/shm"}},
			wantVolumes: []hostVolume{{Source: "/x/io.containerd.grpc.v1.cri/sandboxes/pod2/shm", Name: "0"}},
			wantMounts:  []specs.Mount{{Destination: "/dev/shm", Type: "bind", Source: api.SharedDir + "/c1/mounts/0"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := PlanVolumes(tc.mounts, policy, "c1")
			if !reflect.DeepEqual(plan.Volumes, tc.wantVolumes) {
				t.Errorf("volumes\n got %+v\nwant %+v", plan.Volumes, tc.wantVolumes)
			}
			if !reflect.DeepEqual(plan.Mounts, tc.wantMounts) {
				t.Errorf("mounts\n got %+v\nwant %+v", plan.Mounts, tc.wantMounts)
			}
		})
	}
}

// TestOpenVolumeSource opens bind sources the way Create does and checks
// the path they really are against the policy.
func TestOpenVolumeSource(t *testing.T) {
	root := t.TempDir()
	allowed := filepath.Join(root, "allowed")
	secret := filepath.Join(root, "secret")
	for _, d := range []string{allowed + "/dir", secret} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(allowed, "file"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(allowed, "escape")); err != nil {
		t.Fatal(err)
	}
	policy := VolumePolicy{allowed: []string{allowed}}
	for _, tc := range []struct {
		name, source, wantErr string
		wantDir               bool
	}{
		{name: "file", source: allowed + "/file"},
		{name: "dir", source: allowed + "/dir", wantDir: true},
		{name: "symlink out of the allowed dir", source: allowed + "/escape", wantErr: "outside volumes.allowed_host_paths"},
		{name: "dot dot out of the allowed dir", source: allowed + "/../secret", wantErr: "outside volumes.allowed_host_paths"},
		{name: "relative", source: "allowed/file", wantErr: "not an absolute path"},
		{name: "missing source", source: allowed + "/nope", wantErr: "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, fi, err := openVolumeSource(tc.source, policy)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("openVolumeSource = %v, want error containing %q", err, tc.wantErr)
				}
				if strings.Contains(tc.wantErr, "allowed") && !errdefs.IsInvalidArgument(err) {
					t.Fatalf("openVolumeSource = %v, want InvalidArgument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = f.Close() }()
			if fi.IsDir() != tc.wantDir {
				t.Fatalf("IsDir = %v", fi.IsDir())
			}
		})
	}
}

// TestContainerFSRefusesRROWithPropagation: a recursively read-only
// volume that would receive host mounts later (rslave, rshared) is
// refused, since those mounts would reach the guest writable.
func TestContainerFSRefusesRROWithPropagation(t *testing.T) {
	src := t.TempDir()
	policy := VolumePolicy{allowed: []string{src}}
	plan := PlanVolumes([]specs.Mount{{Destination: "/d", Type: "bind", Source: src, Options: []string{"rbind", "rro", "rslave"}}}, policy, "c1")
	_, _, err := ContainerFS(nil, t.TempDir(), "", plan, policy)
	if err == nil || !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "rro with slave or shared propagation") {
		t.Fatalf("containerFS = %v, want InvalidArgument naming rro and propagation", err)
	}
	plan = PlanVolumes([]specs.Mount{{Destination: "/d", Type: "bind", Source: src, Options: []string{"rbind", "rro", "rprivate"}}}, policy, "c1")
	fs, closeAll, err := ContainerFS(nil, t.TempDir(), "", plan, policy)
	if err != nil {
		t.Fatal(err)
	}
	closeAll()
	if len(fs.Volumes) != 1 || !fs.Volumes[0].RecursiveReadOnly {
		t.Fatalf("volumes %+v", fs.Volumes)
	}
}
