package bundle

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// criPluginDir is the directory containerd's CRI plugin keeps its pod and
// container files in, under both its root and its state directory.
const criPluginDir = "io.containerd.grpc.v1.cri"

// VolumePolicy decides which host paths a container may bind-mount.
type VolumePolicy struct {
	// allowed are the directories of volumes.allowed_host_paths.
	allowed []string
	// denied are never shared: config.DeniedHostPaths and Veil's state
	// directory (other sandboxes' shared directories).
	denied []string
	// podID and containerID name the pod's and the container's own CRI
	// directories, which are always allowed.
	podID, containerID string
}

// NewVolumePolicy is the policy of cfg for container containerID of pod
// podID.
func NewVolumePolicy(cfg *config.Config, podID, containerID string) VolumePolicy {
	denied := append([]string{}, config.DeniedHostPaths...)
	if cfg.StateDir != "" {
		denied = append(denied, filepath.Clean(cfg.StateDir))
	}
	return VolumePolicy{allowed: cfg.Volumes.AllowedHostPaths, denied: denied, podID: podID, containerID: containerID}
}

// check says whether the host path p (symlinks already resolved) may be
// shared, and if not, why. p must be absolute and clean: the policy
// compares path elements, and a ".." after an allowed prefix would lead
// anywhere.
func (v VolumePolicy) check(p string) error {
	if !filepath.IsAbs(p) || filepath.Clean(p) != p {
		return fmt.Errorf("host path %q is not a clean absolute path", p)
	}
	for _, d := range v.denied {
		if pathWithin(p, d) {
			return fmt.Errorf("host path %s lies in %s, which is never shared with a guest", p, d)
		}
	}
	if v.ownCRIPath(p) {
		return nil
	}
	for _, a := range v.allowed {
		if pathWithin(p, a) {
			return nil
		}
	}
	return fmt.Errorf("host path %s is outside volumes.allowed_host_paths %v", p, v.allowed)
}

// ownCRIPath reports whether p is one of the files containerd's CRI plugin
// made for this pod (…/io.containerd.grpc.v1.cri/sandboxes/<pod>/…, its
// image volumes …/image-volumes/<pod>/…) or for this container
// (…/io.containerd.grpc.v1.cri/containers/<id>/…). p must be absolute
// and clean; no other path is one.
func (v VolumePolicy) ownCRIPath(p string) bool {
	if !filepath.IsAbs(p) || filepath.Clean(p) != p {
		return false
	}
	parts := strings.Split(p, "/")
	for i := 0; i+3 < len(parts); i++ {
		if parts[i] != criPluginDir {
			continue
		}
		switch {
		case parts[i+1] == "sandboxes" && v.podID != "" && parts[i+2] == v.podID:
			return true
		case parts[i+1] == "image-volumes" && v.podID != "" && parts[i+2] == v.podID:
			return true
		case parts[i+1] == "containers" && v.containerID != "" && parts[i+2] == v.containerID:
			return true
		}
	}
	return false
}

// pathWithin reports whether p is dir or lies below it.
func pathWithin(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// hostVolume is one bind mount of a spec that is shared with the guest.
type hostVolume struct {
	// Source is the host path as the spec names it.
	Source string
	// Name is its name in the container's share directory (the index of
	// the mount in the spec): the guest sees it at
	// statedir.GuestVolume(container, Name).
	Name string
	// ReadOnly makes the top of the host-side tree read-only too (ro),
	// RecursiveReadOnly all of it (rro), so that virtiofsd cannot write
	// to it whatever the guest asks.
	ReadOnly, RecursiveReadOnly bool
	// Recursive binds submounts too (rbind).
	Recursive bool
	// HostToGuest keeps receiving mounts the host makes under the source
	// later (the spec asks for rslave or rshared propagation); otherwise
	// the bind is private. Mounts made in the guest never reach the host.
	HostToGuest bool
}

// VolumePlan is what sharing a container's volumes with the guest takes.
type VolumePlan struct {
	// Volumes are the binds to make on the host, in spec order.
	Volumes []hostVolume
	// GuestPaths are where the guest sees each of Volumes.
	GuestPaths []string
	// Mounts is the spec's mount list rewritten for the guest.
	Mounts []specs.Mount
}

// PlanVolumes rewrites the bind mounts of a container's spec for the
// guest: each one's source is shown to the guest through the share (as
// volume <n>, the mount's index) and the spec names the guest path; the
// pod's /dev/shm (a tmpfs containerd's CRI plugin made for the pod)
// becomes the guest's pod shm. Non-bind mounts are kept as they are.
// Sources are checked when they are opened, not here.
func PlanVolumes(mounts []specs.Mount, policy VolumePolicy, containerID string) VolumePlan {
	var plan VolumePlan
	for i, m := range mounts {
		if !isBind(m) {
			plan.Mounts = append(plan.Mounts, m)
			continue
		}
		if m.Destination == "/dev/shm" && policy.ownCRIPath(filepath.Clean(m.Source)) {
			m.Source = api.PodShmDir
			plan.Mounts = append(plan.Mounts, m)
			continue
		}
		name := strconv.Itoa(i)
		plan.Volumes = append(plan.Volumes, hostVolume{
			Source:            m.Source,
			Name:              name,
			ReadOnly:          hasOption(m.Options, "ro"),
			RecursiveReadOnly: hasOption(m.Options, "rro"),
			Recursive:         hasOption(m.Options, "rbind"),
			HostToGuest:       hasAnyOption(m.Options, "rslave", "slave", "rshared", "shared"),
		})
		m.Source = statedir.GuestVolume(containerID, name)
		plan.GuestPaths = append(plan.GuestPaths, m.Source)
		plan.Mounts = append(plan.Mounts, m)
	}
	return plan
}

// PodShmSize returns the size of pod podID's /dev/shm as the spec mounts
// it (see podShmSize).
func (bs *Spec) PodShmSize(podID string) (uint64, error) {
	return podShmSize(bs.Spec.Mounts, VolumePolicy{podID: podID})
}

// podShmSize returns the size of the pod's /dev/shm: the size of the tmpfs
// containerd's CRI plugin mounted for it, or 0 when the spec has none.
func podShmSize(mounts []specs.Mount, policy VolumePolicy) (uint64, error) {
	for _, m := range mounts {
		if m.Destination != "/dev/shm" || !isBind(m) || !policy.ownCRIPath(filepath.Clean(m.Source)) {
			continue
		}
		var st unix.Statfs_t
		if err := unix.Statfs(m.Source, &st); err != nil {
			return 0, fmt.Errorf("size of pod shm %s: %w", m.Source, err)
		}
		return st.Blocks * uint64(st.Bsize), nil
	}
	return 0, nil
}

func isBind(m specs.Mount) bool {
	return m.Type == "bind" || hasOption(m.Options, "bind") || hasOption(m.Options, "rbind")
}

func hasAnyOption(opts []string, os ...string) bool {
	for _, o := range os {
		if hasOption(opts, o) {
			return true
		}
	}
	return false
}

func hasOption(opts []string, o string) bool {
	for _, x := range opts {
		if x == o {
			return true
		}
	}
	return false
}

// openVolumeSource opens a bind source with O_PATH and checks the path it
// really is (read back from /proc/self/fd) against the policy, so that a
// symlink swapped in after the check cannot redirect the mount. The caller
// mounts /proc/self/fd/<fd> and closes the file.
func openVolumeSource(src string, policy VolumePolicy) (*os.File, os.FileInfo, error) {
	if !filepath.IsAbs(src) {
		return nil, nil, fmt.Errorf("bind source %q is not an absolute path: %w", src, errdefs.ErrInvalidArgument)
	}
	fd, err := unix.Open(src, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open bind source %s: %w", src, err)
	}
	f := os.NewFile(uintptr(fd), src)
	real, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		_ = f.Close()
		return nil, nil, fmt.Errorf("resolve bind source %s: %w", src, err)
	}
	if err := policy.check(real); err != nil {
		_ = f.Close()
		return nil, nil, fmt.Errorf("bind source %s refused: %w: %w", src, err, errdefs.ErrInvalidArgument)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, nil, fmt.Errorf("stat bind source %s: %w", src, err)
	}
	return f, fi, nil
}
