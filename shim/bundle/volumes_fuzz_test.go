package bundle

import (
	"encoding/json"
	"errors"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// policyAllows restates the volume policy on clean absolute paths: never
// below a denied directory; below an allowed one, or a file of the pod's
// or the container's own CRI directories.
func policyAllows(v VolumePolicy, p string) bool {
	if !path.IsAbs(p) || path.Clean(p) != p {
		return false
	}
	below := func(dir string) bool { return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/") }
	for _, d := range v.denied {
		if below(d) {
			return false
		}
	}
	for _, a := range v.allowed {
		if below(a) {
			return true
		}
	}
	el := strings.Split(p, "/")
	for i := 0; i+3 < len(el); i++ {
		if el[i] != criPluginDir {
			continue
		}
		switch el[i+1] {
		case "sandboxes", "image-volumes":
			if v.podID != "" && el[i+2] == v.podID {
				return true
			}
		case "containers":
			if v.containerID != "" && el[i+2] == v.containerID {
				return true
			}
		}
	}
	return false
}

// volumeTree is a host tree for FuzzVolumePolicy: an allowed directory
// with symlinks leading out of it, into the state directory and onto the
// host, and those places.
func volumeTree(f *testing.F) (base string, policy VolumePolicy) {
	base = f.TempDir()
	for _, d := range []string{"allowed/dir/sub", "outside", "state/sb/shared", "x/io.containerd.grpc.v1.cri/sandboxes/pod1"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			f.Fatal(err)
		}
	}
	for _, p := range []string{"allowed/file", "outside/secret", "x/io.containerd.grpc.v1.cri/sandboxes/pod1/hosts"} {
		if err := os.WriteFile(filepath.Join(base, p), nil, 0o644); err != nil {
			f.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"allowed/out":    "../outside",
		"allowed/abs":    "/etc",
		"allowed/state":  "../state/sb",
		"allowed/in":     "dir/sub",
		"allowed/loop":   "loop",
		"allowed/dir/up": "../..",
		"outside/back":   "../allowed/dir",
	} {
		if err := os.Symlink(target, filepath.Join(base, link)); err != nil {
			f.Fatal(err)
		}
	}
	cfg := config.Default()
	cfg.StateDir = filepath.Join(base, "state")
	cfg.Volumes.AllowedHostPaths = []string{filepath.Join(base, "allowed")}
	return base, NewVolumePolicy(cfg, "pod1", "c1")
}

// FuzzVolumePolicy checks host paths against the volume policy, as
// strings (check) and as bind sources opened through a tree of hostile
// symlinks (openVolumeSource). check must agree with policyAllows, and a
// source openVolumeSource accepts must really be (as the kernel names the
// opened file) a path the policy allows, whatever symlinks led to it.
func FuzzVolumePolicy(f *testing.F) {
	base, policy := volumeTree(f)
	for _, s := range []string{
		"allowed", "allowed/dir/sub", "allowed/file", "allowed/out/secret", "allowed/abs/shadow",
		"allowed/state/shared", "allowed/in", "allowed/loop", "allowed/dir/up/outside", "outside/back",
		"allowed/../outside/secret", "allowed/./dir", "allowed//dir/", "allowedX", "state/sb",
		"x/io.containerd.grpc.v1.cri/sandboxes/pod1/hosts", "x/io.containerd.grpc.v1.cri/sandboxes/pod1",
		"x/io.containerd.grpc.v1.cri/sandboxes/pod1/../../../../outside/secret",
		"/proc/self/root", "/var/lib/kubelet/pods", "/", "", "relative", "/dev/null",
		"io.containerd.grpc.v1.cri/sandboxes/pod1/x", "/etc/io.containerd.grpc.v1.cri/containers/c1/../../../shadow",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		// As a string: the policy and its restatement agree.
		if err, want := policy.check(p), policyAllows(policy, p); (err == nil) != want {
			t.Fatalf("check(%q) = %v, policy says allowed=%v", p, err, want)
		}
		// As a bind source below the tree (or an absolute host path).
		src := p
		if !strings.HasPrefix(p, "/") {
			src = base + "/" + p
		}
		if strings.ContainsRune(src, 0) {
			return
		}
		file, fi, err := openVolumeSource(src, policy)
		if err != nil {
			if file != nil || fi != nil {
				t.Fatalf("openVolumeSource(%q) failed with a file: %v", src, err)
			}
			if strings.Contains(err.Error(), "refused") && !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("refusal %v does not wrap ErrInvalidArgument", err)
			}
			return
		}
		defer func() { _ = file.Close() }()
		real, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(file.Fd())))
		if err != nil {
			t.Fatal(err)
		}
		if !policyAllows(policy, real) {
			t.Fatalf("openVolumeSource(%q) opened %q, which the policy refuses", src, real)
		}
	})
}

// FuzzPlanVolumes plans the volumes of arbitrary mount lists: every bind
// mount must come out pointing into the container's own volume directory
// of the share (or, for the pod's own shm, the guest's pod shm), with one
// host volume per re-pointed bind, and other mounts unchanged.
func FuzzPlanVolumes(f *testing.F) {
	for _, s := range []string{
		`[{"destination":"/proc","type":"proc","source":"proc"},{"destination":"/data","type":"bind","source":"/var/lib/kubelet/x","options":["rbind","ro"]}]`,
		`[{"destination":"/dev/shm","type":"bind","source":"/run/containerd/io.containerd.grpc.v1.cri/sandboxes/pod1/shm","options":["rbind","rw"]}]`,
		`[{"destination":"/dev/shm","options":["bind"],"source":"/x/io.containerd.grpc.v1.cri/sandboxes/pod1/../pod2/shm"}]`,
		`[{"destination":"/dev/shm","options":["bind"],"source":"io.containerd.grpc.v1.cri/sandboxes/pod1/shm"}]`,
		`[{"destination":"/a","options":["rbind","rro","rslave","shared"],"source":"../../etc"},{"destination":"/b","type":"bind","source":""}]`,
		`[]`, `null`,
	} {
		f.Add([]byte(s))
	}
	policy := VolumePolicy{podID: "pod1", containerID: "c1", allowed: []string{"/var/lib/kubelet"}, denied: config.DeniedHostPaths}
	f.Fuzz(func(t *testing.T, data []byte) {
		var mounts []specs.Mount
		if json.Unmarshal(data, &mounts) != nil {
			return
		}
		plan := PlanVolumes(mounts, policy, "c1")
		if len(plan.Mounts) != len(mounts) || len(plan.Volumes) != len(plan.GuestPaths) {
			t.Fatalf("plan of %d mounts: %d mounts, %d volumes, %d guest paths", len(mounts), len(plan.Mounts), len(plan.Volumes), len(plan.GuestPaths))
		}
		volDir := api.SharedDir + "/c1/mounts/"
		v := 0
		for i, m := range plan.Mounts {
			if !isBind(mounts[i]) {
				if m.Source != mounts[i].Source {
					t.Fatalf("non-bind mount %d re-pointed to %q", i, m.Source)
				}
				continue
			}
			if m.Source == api.PodShmDir {
				if m.Destination != "/dev/shm" || !policy.ownCRIPath(filepath.Clean(mounts[i].Source)) {
					t.Fatalf("mount %d (%+v) became the pod shm", i, mounts[i])
				}
				continue
			}
			if v >= len(plan.Volumes) {
				t.Fatalf("bind mount %d has no host volume", i)
			}
			vol := plan.Volumes[v]
			want := statedir.GuestVolume("c1", strconv.Itoa(i))
			if m.Source != want || plan.GuestPaths[v] != want || vol.Name != strconv.Itoa(i) || vol.Source != mounts[i].Source || !strings.HasPrefix(want, volDir) {
				t.Fatalf("bind mount %d (%+v) planned as %+v at %q", i, mounts[i], vol, m.Source)
			}
			v++
		}
		if v != len(plan.Volumes) {
			t.Fatalf("%d host volumes for %d re-pointed binds", len(plan.Volumes), v)
		}
	})
}
