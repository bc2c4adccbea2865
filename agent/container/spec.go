package container

import (
	"encoding/json"
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// cgroupParent is the guest cgroup under which containers without a usable
// cgroupsPath are placed.
const cgroupParent = "/veil"

// ParseSpec decodes an OCI runtime spec (config.json).
func ParseSpec(b []byte) (*specs.Spec, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("parse OCI spec: empty: %w", errdefs.ErrInvalidArgument)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("parse OCI spec (%d bytes): %w: %w", len(b), err, errdefs.ErrInvalidArgument)
	}
	if s.Process == nil {
		return nil, fmt.Errorf("parse OCI spec: no process: %w", errdefs.ErrInvalidArgument)
	}
	if len(s.Process.Args) == 0 {
		return nil, fmt.Errorf("parse OCI spec: process has no args: %w", errdefs.ErrInvalidArgument)
	}
	return &s, nil
}

// ParseProcess decodes an OCI runtime-spec Process (an exec's process).
func ParseProcess(b []byte) (*specs.Process, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("parse OCI process: empty: %w", errdefs.ErrInvalidArgument)
	}
	var p specs.Process
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("parse OCI process (%d bytes): %w: %w", len(b), err, errdefs.ErrInvalidArgument)
	}
	if len(p.Args) == 0 {
		return nil, fmt.Errorf("parse OCI process: no args: %w", errdefs.ErrInvalidArgument)
	}
	return &p, nil
}

// Rewrite is what RewriteSpec changed, for the log.
type Rewrite struct {
	// Dropped lists what was removed because it names host paths or
	// features the guest does not have.
	Dropped []string
	// NetSysctls are the spec's net.* sysctls of a container that uses the
	// guest's own network (the pod's): runc refuses them there, so they
	// were taken out and the caller applies them to the guest.
	NetSysctls map[string]string
}

// RewriteOptions say how the guest differs from the host.
type RewriteOptions struct {
	// Rootfs is the guest path of the container's root filesystem.
	Rootfs string
	// SharedDir is where the host's shared directory is mounted; bind
	// mounts whose source lies inside it are kept.
	SharedDir string
	// Terminal says whether the process gets a pty.
	Terminal bool
	// Seccomp says whether this build can apply seccomp filters.
	Seccomp bool
	// PodShmDir is the pod's shared /dev/shm; bind mounts from it are kept.
	PodShmDir string
	// PodNamespaces maps namespace types to the pod container's namespace
	// files (/proc/<pid>/ns/<type>): a spec namespace of such a type that
	// names a host path joins it instead of becoming a new namespace.
	PodNamespaces map[specs.LinuxNamespaceType]string
}

// RewriteSpec makes a host OCI spec runnable inside the guest, in place:
// the root becomes opts.Rootfs; namespaces lose their host paths (a joined
// network namespace becomes the guest's own, which is the pod's network;
// others become new ones); hooks and bind mounts of host paths go; the
// cgroups path is made a clean path under the guest's hierarchy.
func RewriteSpec(s *specs.Spec, id string, opts RewriteOptions) (Rewrite, error) {
	var rw Rewrite
	if !filepath.IsAbs(opts.Rootfs) {
		return rw, fmt.Errorf("rootfs %q is not an absolute guest path: %w", opts.Rootfs, errdefs.ErrInvalidArgument)
	}
	if s.Root == nil {
		s.Root = &specs.Root{}
	}
	s.Root.Path = filepath.Clean(opts.Rootfs)
	if s.Process != nil {
		s.Process.Terminal = opts.Terminal
		if s.Process.ApparmorProfile != "" {
			rw.Dropped = append(rw.Dropped, "apparmor profile "+s.Process.ApparmorProfile)
			s.Process.ApparmorProfile = ""
		}
		if s.Process.SelinuxLabel != "" {
			rw.Dropped = append(rw.Dropped, "selinux label")
			s.Process.SelinuxLabel = ""
		}
	}
	if s.Hooks != nil {
		rw.Dropped = append(rw.Dropped, "hooks")
		s.Hooks = nil
	}
	s.Mounts = rewriteMounts(s.Mounts, []string{opts.SharedDir, opts.PodShmDir}, &rw)

	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	l := s.Linux
	var nss []specs.LinuxNamespace
	for _, ns := range l.Namespaces {
		if ns.Path != "" {
			if ns.Type == specs.NetworkNamespace {
				rw.Dropped = append(rw.Dropped, "network namespace "+ns.Path+" (uses the guest's network)")
				continue
			}
			if p := opts.PodNamespaces[ns.Type]; p != "" {
				ns.Path = p
			} else {
				rw.Dropped = append(rw.Dropped, string(ns.Type)+" namespace path "+ns.Path)
				ns.Path = ""
			}
		}
		nss = append(nss, ns)
	}
	// The guest is cgroup v2: give the container its own cgroup namespace,
	// as containerd does on cgroup v2 hosts (this host may be v1), so it
	// sees its own cgroup at /sys/fs/cgroup.
	if !hasNamespace(nss, specs.CgroupNamespace) {
		nss = append(nss, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	l.Namespaces = nss
	if !hasNamespace(nss, specs.NetworkNamespace) {
		for k, v := range l.Sysctl {
			if strings.HasPrefix(k, "net.") {
				if rw.NetSysctls == nil {
					rw.NetSysctls = map[string]string{}
				}
				rw.NetSysctls[k] = v
				delete(l.Sysctl, k)
			}
		}
	}
	l.CgroupsPath = guestCgroupsPath(l.CgroupsPath, id)
	if l.MountLabel != "" {
		rw.Dropped = append(rw.Dropped, "selinux mount label")
		l.MountLabel = ""
	}
	if opts.Seccomp {
		// Every container, Unconfined ones too: no AF_VSOCK sockets.
		denyVsock(l)
	} else {
		if l.Seccomp != nil {
			rw.Dropped = append(rw.Dropped, "seccomp profile (agent built without seccomp)")
			l.Seccomp = nil
		}
		rw.Dropped = append(rw.Dropped, "AF_VSOCK denial (agent built without seccomp)")
	}
	if l.IntelRdt != nil {
		rw.Dropped = append(rw.Dropped, "intelRdt")
		l.IntelRdt = nil
	}
	return rw, nil
}

// rewriteMounts drops bind mounts of host paths; binds from the guest
// directories in keep (the shared directory, the pod's shm) and all
// non-bind mounts stay.
func rewriteMounts(ms []specs.Mount, keep []string, rw *Rewrite) []specs.Mount {
	var out []specs.Mount
	for _, m := range ms {
		if isBind(m) && !withinAny(m.Source, keep) {
			rw.Dropped = append(rw.Dropped, fmt.Sprintf("bind mount %s -> %s (host path)", m.Source, m.Destination))
			continue
		}
		out = append(out, m)
	}
	return out
}

func isBind(m specs.Mount) bool {
	if m.Type == "bind" {
		return true
	}
	for _, o := range m.Options {
		if o == "bind" || o == "rbind" {
			return true
		}
	}
	return false
}

func withinAny(p string, dirs []string) bool {
	for _, d := range dirs {
		if within(p, d) {
			return true
		}
	}
	return false
}

func within(p, dir string) bool {
	if dir == "" || !filepath.IsAbs(p) {
		return false
	}
	rel, err := filepath.Rel(filepath.Clean(dir), filepath.Clean(p))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// guestCgroupsPath turns the host's cgroupsPath into a clean absolute
// cgroupfs path. Systemd-style paths (slice:prefix:name) and empty ones
// become /veil/<id>.
func guestCgroupsPath(p, id string) string {
	if p == "" || strings.Contains(p, ":") {
		return path.Join(cgroupParent, id)
	}
	c := path.Clean("/" + p)
	if c == "/" {
		return path.Join(cgroupParent, id)
	}
	return c
}

func hasNamespace(nss []specs.LinuxNamespace, t specs.LinuxNamespaceType) bool {
	for _, ns := range nss {
		if ns.Type == t {
			return true
		}
	}
	return false
}
