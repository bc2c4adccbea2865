package hostcheck

import (
	"bytes"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/moby/sys/mountinfo"

	"github.com/veil-runtime/veil/runtime/config"
)

const nameCgroupControllers = "cgroup controllers"

// cgroupV1Required are the v1 hierarchies the sandbox cgroup needs
// (runtime/cgroup): those of its limits, and cpuacct.
var cgroupV1Required = []string{"memory", "cpu", "cpuacct", "pids"}

// cgroupV2Required are the v2 controllers the sandbox cgroup needs.
var cgroupV2Required = []string{"memory", "cpu", "pids"}

// cgroupRoot is where the cgroup hierarchies live.
const cgroupRoot = "/sys/fs/cgroup"

// kernelController is a line of /proc/cgroups.
type kernelController struct {
	hierarchy string // "0": in no v1 hierarchy (on cgroup2, or unused)
	enabled   bool   // false: disabled with cgroup_disable= on the kernel command line
}

// readProcCgroups reads /proc/cgroups (nil when it cannot be read).
func readProcCgroups(h Host) map[string]kernelController {
	b, err := h.ReadFile("/proc/cgroups")
	if err != nil {
		return nil
	}
	m := map[string]kernelController{}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || strings.HasPrefix(f[0], "#") {
			continue
		}
		m[f[0]] = kernelController{hierarchy: f[1], enabled: f[3] == "1"}
	}
	return m
}

// cgroupMounts reads the cgroup and cgroup2 mounts of
// /proc/self/mountinfo; ok is false when it cannot be read.
func cgroupMounts(h Host) (mounts []*mountinfo.Info, ok bool) {
	b, err := h.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, false
	}
	ms, err := mountinfo.GetMountsFromReader(bytes.NewReader(b), mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		return nil, false
	}
	return ms, true
}

// cgroupLayout is how the host mounts cgroups.
type cgroupLayout struct {
	v2 bool // cgroup2 at /sys/fs/cgroup (unified mode)
	// v1 maps a v1 controller to the mount point of its hierarchy.
	v1 map[string]string
}

// probeCgroupLayout reads the layout from mountinfo or, without it (a
// fake root), from the directories below /sys/fs/cgroup.
func probeCgroupLayout(h Host) cgroupLayout {
	l := cgroupLayout{v1: map[string]string{}}
	mounts, ok := cgroupMounts(h)
	if !ok {
		l.v2 = h.Exists(cgroupRoot + "/cgroup.controllers")
		if !l.v2 {
			for _, c := range cgroupV1Required {
				if p := cgroupRoot + "/" + c; h.Exists(p) {
					l.v1[c] = p
				}
			}
		}
		return l
	}
	for _, m := range mounts {
		switch m.FSType {
		case "cgroup2":
			if m.Mountpoint == cgroupRoot {
				l.v2 = true
			}
		case "cgroup":
			for _, opt := range strings.Split(m.VFSOptions, ",") {
				if _, seen := l.v1[opt]; !seen && opt != "rw" && opt != "ro" && !strings.Contains(opt, "=") {
					l.v1[opt] = m.Mountpoint
				}
			}
		}
	}
	return l
}

// whyMissing explains a controller the sandbox cgroup cannot use, from
// /proc/cgroups.
func whyMissing(known map[string]kernelController, c string, v2 bool) string {
	k, listed := known[c]
	switch {
	case known == nil:
		return c
	case !listed:
		return c + " (not in this kernel)"
	case !k.enabled:
		return c + " (disabled on the kernel command line)"
	case v2 && k.hierarchy != "0":
		return c + " (bound to a cgroup v1 hierarchy)"
	case v2:
		return c + " (not available at the root)"
	default:
		return c + " (no v1 hierarchy mounted)"
	}
}

// checkCgroupControllers checks that the sandbox cgroup can be made with
// the controllers its limits need (runtime/cgroup): on v2 memory, cpu and
// pids available at the root and enable-able down to cgroups.parent; on
// v1 (hybrid hosts too) the memory, cpu, cpuacct and pids hierarchies
// mounted, with memory.use_hierarchy on.
func checkCgroupControllers(cfg *config.Config, h Host) Result {
	res := Result{Name: nameCgroupControllers}
	if !cfg.Cgroups.Enabled {
		res.Status, res.Detail = OK, "not used: cgroups.enabled = false (the helpers are not limited)"
		return res
	}
	const off = "; or set cgroups.enabled = false (the helpers are then not limited)"
	known := readProcCgroups(h)
	l := probeCgroupLayout(h)
	if l.v2 {
		return checkCgroupV2(cfg, h, known, off)
	}
	var missing []string
	for _, c := range cgroupV1Required {
		if l.v1[c] == "" {
			missing = append(missing, whyMissing(known, c, false))
		}
	}
	if len(missing) > 0 {
		res.Status = Fail
		res.Detail = "cgroup v1: hierarchies needed by the sandbox cgroup are not mounted: " + strings.Join(missing, ", ")
		res.Fix = "mount each one, e.g. mkdir -p /sys/fs/cgroup/pids && mount -t cgroup -o pids cgroup /sys/fs/cgroup/pids " +
			"(a controller disabled with cgroup_disable= needs a reboot without it), or boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1)" + off
		return res
	}
	mem := path.Join(l.v1["memory"], "memory.use_hierarchy")
	if b, err := h.ReadFile(mem); err == nil && strings.TrimSpace(string(b)) == "0" {
		res.Status = Fail
		res.Detail = mem + " is 0: a sandbox cgroup's memory would not count against its parent's (the pod's) limit"
		res.Fix = "echo 1 > " + mem + " (before any child cgroup exists)" + off
		return res
	}
	var where []string
	for _, c := range cgroupV1Required {
		where = append(where, c+" at "+l.v1[c])
	}
	res.Status = OK
	res.Detail = "cgroup v1: " + strings.Join(where, ", ")
	return res
}

func checkCgroupV2(cfg *config.Config, h Host, known map[string]kernelController, off string) Result {
	res := Result{Name: nameCgroupControllers}
	b, err := h.ReadFile(cgroupRoot + "/cgroup.controllers")
	if err != nil {
		res.Status, res.Detail = Fail, fmt.Sprintf("cgroup v2: %v", err)
		res.Fix = "mount cgroup2 on /sys/fs/cgroup" + off
		return res
	}
	have := strings.Fields(string(b))
	var missing []string
	for _, c := range cgroupV2Required {
		if !slices.Contains(have, c) {
			missing = append(missing, whyMissing(known, c, true))
		}
	}
	if len(missing) > 0 {
		res.Status = Fail
		res.Detail = "cgroup v2: controllers needed by the sandbox cgroup are missing from /sys/fs/cgroup/cgroup.controllers: " + strings.Join(missing, ", ")
		res.Fix = "unmount the v1 hierarchy that holds them, or boot without cgroup_disable= for them (and with systemd.unified_cgroup_hierarchy=1)" + off
		return res
	}
	// The library enables the controllers in cgroup.subtree_control of
	// every ancestor of the sandbox cgroup. A cgroup below the root that
	// holds processes cannot enable them (no internal processes), nor
	// can a cgroup whose own parent did not hand them down.
	dir := cgroupRoot
	for _, elem := range strings.Split(strings.TrimPrefix(cfg.Cgroups.Parent, "/"), "/") {
		dir = path.Join(dir, elem)
		if !h.Exists(dir) {
			break
		}
		ctl, _ := h.ReadFile(path.Join(dir, "cgroup.controllers"))
		sub, _ := h.ReadFile(path.Join(dir, "cgroup.subtree_control"))
		procs, _ := h.ReadFile(path.Join(dir, "cgroup.procs"))
		var blocked []string
		for _, c := range cgroupV2Required {
			if slices.Contains(strings.Fields(string(sub)), c) {
				continue
			}
			switch {
			case !slices.Contains(strings.Fields(string(ctl)), c):
				blocked = append(blocked, c+" (not handed down by its parent)")
			case len(bytes.TrimSpace(procs)) > 0:
				blocked = append(blocked, c+" (it holds processes)")
			}
		}
		if len(blocked) > 0 {
			res.Status = Fail
			res.Detail = fmt.Sprintf("cgroup v2: %s (on the way to cgroups.parent %s) cannot enable for its children: %s",
				dir, cfg.Cgroups.Parent, strings.Join(blocked, ", "))
			res.Fix = "set cgroups.parent to a cgroup that holds no processes and gets memory, cpu and pids from its parent, " +
				"or move the processes out of " + dir + off
			return res
		}
	}
	res.Status = OK
	res.Detail = "cgroup v2: " + strings.Join(cgroupV2Required, ", ") + " available; sandboxes started without CRI go below " + cfg.Cgroups.Parent
	return res
}
