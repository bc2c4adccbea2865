package hostcheck

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/hypervisor/registry"
	"github.com/veil-runtime/veil/runtime/jail"
)

// Names of the jail's checks.
const (
	nameUIDRange = "jail uid range"
	nameJail     = "jail namespaces and mount API"
	nameSeccomp  = "seccomp"
	nameKVMGroup = "/dev/kvm group"
)

// idEntry is one user or group of the host's files, or a subordinate
// range of /etc/subuid or /etc/subgid: the ids [first, first+count).
type idEntry struct {
	file  string // "/etc/passwd", ...
	kind  string // "uid", "gid", "subuid range", "subgid range"
	name  string
	first uint64
	count uint64
}

// readIDFiles reads the host's users, groups and subordinate ranges;
// missing lists the files that do not exist.
func readIDFiles(h Host) (entries []idEntry, missing []string, err error) {
	for _, f := range []struct {
		path string
		// field numbers (after splitting on ':') holding ids, and their kinds.
		fields []int
		kinds  []string
		ranged bool
	}{
		{path: "/etc/passwd", fields: []int{2, 3}, kinds: []string{"uid", "gid"}},
		{path: "/etc/group", fields: []int{2}, kinds: []string{"gid"}},
		{path: "/etc/subuid", fields: []int{1}, kinds: []string{"subuid range"}, ranged: true},
		{path: "/etc/subgid", fields: []int{1}, kinds: []string{"subgid range"}, ranged: true},
	} {
		b, rerr := h.ReadFile(f.path)
		if errors.Is(rerr, os.ErrNotExist) {
			missing = append(missing, f.path)
			continue
		}
		if rerr != nil {
			return nil, nil, rerr
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			fields := strings.Split(line, ":")
			for i, fi := range f.fields {
				if fi >= len(fields) {
					continue
				}
				id, perr := strconv.ParseUint(fields[fi], 10, 32)
				if perr != nil {
					continue
				}
				e := idEntry{file: f.path, kind: f.kinds[i], name: fields[0], first: id, count: 1}
				if f.ranged {
					if len(fields) < 3 {
						continue
					}
					if e.count, perr = strconv.ParseUint(fields[2], 10, 32); perr != nil {
						continue
					}
				}
				entries = append(entries, e)
			}
		}
		if serr := sc.Err(); serr != nil {
			return nil, nil, fmt.Errorf("%s: %w", f.path, serr)
		}
	}
	return entries, missing, nil
}

func (e idEntry) String() string {
	if e.count == 1 {
		return fmt.Sprintf("%s %d (%s in %s)", e.kind, e.first, e.name, e.file)
	}
	return fmt.Sprintf("%s %d-%d (%s in %s)", e.kind, e.first, e.first+e.count-1, e.name, e.file)
}

// checkUIDRange checks that no user, group or subordinate range of the
// host owns an id of the jail range: a host user sharing a jail uid could
// signal or trace that sandbox's VMM.
func checkUIDRange(cfg *config.Config, h Host) Result {
	res := Result{Name: nameUIDRange}
	j := cfg.Jail
	if !j.Enabled {
		res.Status, res.Detail = OK, "not checked: jail.enabled = false"
		return res
	}
	first, count := uint64(j.UIDBase), uint64(j.UIDCount)
	span := fmt.Sprintf("%d-%d (jail.uid_base %d, jail.uid_count %d)", first, first+count-1, first, count)
	entries, missing, err := readIDFiles(h)
	if err != nil {
		res.Status, res.Detail = Warn, fmt.Sprintf("uids %s: cannot read the host's users: %v", span, err)
		res.Fix = "make /etc/passwd, /etc/group, /etc/subuid and /etc/subgid readable, then check again"
		return res
	}
	var clash []string
	slices.SortStableFunc(entries, func(a, b idEntry) int { return cmp.Compare(a.first, b.first) })
	for _, e := range entries {
		if e.first < first+count && first < e.first+e.count {
			clash = append(clash, e.String())
		}
	}
	if len(clash) > 0 {
		res.Status = Warn
		shown := clash
		if len(shown) > 4 {
			shown = append(shown[:4:4], fmt.Sprintf("and %d more", len(clash)-4))
		}
		res.Detail = fmt.Sprintf("uids/gids %s overlap the host's: %s; a host user with a sandbox's uid could signal or trace its VMM",
			span, strings.Join(shown, ", "))
		res.Fix = "set jail.uid_base and jail.uid_count to a range no user, group or /etc/subuid, /etc/subgid entry uses (the default 3000000000 + 65536 is far above them)"
		return res
	}
	res.Status = OK
	res.Detail = fmt.Sprintf("uids/gids %s used by no user, group or subordinate range", span)
	if len(missing) > 0 {
		res.Detail += " (no " + strings.Join(missing, ", ") + ")"
	}
	return res
}

// jailProbeSpec is the jail the check tries: the range's last uid, every
// namespace and a root of its own, the configured rlimits.
func jailProbeSpec(j config.Jail) *jail.Spec {
	uid := j.UIDBase + j.UIDCount - 1
	return &jail.Spec{
		UID: uid, GID: uid, Namespaces: true, NoNewPrivs: true,
		Rlimits: []jail.Rlimit{
			{Resource: unix.RLIMIT_NOFILE, Soft: j.RlimitNofile, Hard: j.RlimitNofile},
			{Resource: unix.RLIMIT_FSIZE, Soft: j.RlimitFsizeMiB << 20, Hard: j.RlimitFsizeMiB << 20},
		},
	}
}

// checkJail runs a program through the jail: new mount, PID, IPC, UTS
// and network namespaces, a tmpfs root built with the new mount API
// (open_tree, move_mount, mount_setattr: Linux 5.12), pivot_root, an
// empty capability bounding set, the jail uid, no_new_privs, rlimits.
func checkJail(ctx context.Context, cfg *config.Config, h Host) Result {
	res := Result{Name: nameJail}
	if !cfg.Jail.Enabled {
		res.Status = Warn
		res.Detail = "jail.enabled = false: the VMM and vhost-device-vsock run as root with every capability, in the host's namespaces and root"
		res.Fix = "set jail.enabled = true (the default) once `veil check` passes with it"
		return res
	}
	if h.TryJail == nil {
		res.Status, res.Detail = Skip, "not tried: not the local host"
		return res
	}
	spec := jailProbeSpec(cfg.Jail)
	err := h.TryJail(ctx, spec)
	var skip *SkipError
	switch {
	case errors.As(err, &skip):
		res.Status, res.Detail = Skip, skip.Reason
	case err != nil:
		res.Status = Fail
		res.Detail = fmt.Sprintf("%s as uid %d in the jail: %v", jailProbeBinary, spec.UID, err)
		res.Fix = "the jail needs Linux 5.12 or later (open_tree, move_mount, mount_setattr), mount, PID, IPC, UTS and network namespaces, " +
			"and root with CAP_SYS_ADMIN outside a restricted container (no seccomp or LSM policy denying them); " +
			"or set jail.enabled = false (not recommended: the helpers then run as root)"
	default:
		res.Status = OK
		res.Detail = fmt.Sprintf("ran %s as uid/gid %d in new mount, PID, IPC, UTS and network namespaces, on a tmpfs root, with no capabilities, no_new_privs, RLIMIT_NOFILE %d, RLIMIT_FSIZE %d MiB",
			jailProbeBinary, spec.UID, cfg.Jail.RlimitNofile, cfg.Jail.RlimitFsizeMiB)
	}
	return res
}

// kernelSeccomp reports the kernel's seccomp support: filters (the
// actions it lists), strict mode only, or none; ok is false when
// /proc/self/status cannot be read.
func kernelSeccomp(h Host) (filters bool, detail string, ok bool) {
	if b, err := h.ReadFile("/proc/sys/kernel/seccomp/actions_avail"); err == nil {
		return true, "kernel seccomp filters (actions: " + strings.TrimSpace(string(b)) + ")", true
	}
	b, err := h.ReadFile("/proc/self/status")
	if err != nil {
		return false, fmt.Sprintf("cannot read /proc/self/status: %v", err), false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "Seccomp_filters:") {
			return true, "kernel seccomp filters", true
		}
		if strings.HasPrefix(l, "Seccomp:") {
			// Before Linux 4.14 there is no actions_avail; a kernel
			// with CONFIG_SECCOMP_FILTER still takes filters.
			return true, "kernel seccomp (no /proc/sys/kernel/seccomp/actions_avail: before Linux 4.14)", true
		}
	}
	return false, "the kernel has no seccomp (no Seccomp: line in /proc/self/status)", true
}

// checkSeccomp checks that the kernel takes seccomp filters (virtiofsd's
// own, QEMU's -sandbox, Cloud Hypervisor's) and, when a jailed QEMU is
// the hypervisor, that QEMU starts with -sandbox QEMUSandboxOpts.
func checkSeccomp(ctx context.Context, cfg *config.Config, h Host, inUse string) Result {
	res := Result{Name: nameSeccomp}
	filters, kernel, ok := kernelSeccomp(h)
	const fixQEMU = "install a QEMU built with libseccomp (Debian's qemu-system-x86 is) or point hypervisor.qemu_path at one; " +
		"or set jail.enabled = false (not recommended: QEMU then also runs as root)"
	switch {
	case !ok:
		res.Status, res.Detail = Warn, kernel
		res.Fix = "run veil check where /proc is mounted"
		return res
	case !filters:
		res.Status, res.Detail = Fail, kernel+": virtiofsd's seccomp filter and QEMU's -sandbox cannot be installed"
		res.Fix = "boot a kernel built with CONFIG_SECCOMP and CONFIG_SECCOMP_FILTER"
		return res
	}
	res.Status, res.Detail = OK, kernel
	switch {
	case inUse != config.HypervisorQEMU:
		res.Detail += "; " + inUse + " installs its own filters"
	case !cfg.Jail.Enabled:
		res.Detail += "; QEMU runs without -sandbox (jail.enabled = false)"
	default:
		qemu, err := findVMM(cfg, h, config.HypervisorQEMU)
		if err != nil {
			res.Detail += "; QEMU's -sandbox not probed: " + err.Error()
			return res
		}
		if h.ProbeQEMUSandbox == nil {
			res.Detail += "; QEMU's -sandbox not probed (not the local host)"
			return res
		}
		err = h.ProbeQEMUSandbox(ctx, qemu)
		var skip *SkipError
		switch {
		case errors.As(err, &skip):
			res.Detail += "; QEMU's -sandbox not probed: " + skip.Reason
		case err != nil:
			res.Status = Fail
			res.Detail = fmt.Sprintf("%s; %s does not start with -sandbox %s: %v", kernel, qemu, QEMUSandboxOpts, err)
			res.Fix = fixQEMU
		default:
			res.Detail += fmt.Sprintf("; %s starts with -sandbox %s", qemu, QEMUSandboxOpts)
		}
	}
	return res
}

// kvmUsed reports whether sandboxes would open /dev/kvm: under the KVM
// accelerator, or always for a VMM that runs only on hardware KVM.
func kvmUsed(r Report, inUse registry.Entry) bool {
	return r.Accel == "kvm" || inUse.HardwareKVM
}

// checkKVMGroup checks that a jailed VMM can open /dev/kvm: it has no
// capabilities and a jail uid, and gets the group owning /dev/kvm as a
// supplementary group, so /dev/kvm must be group read-writable by a group
// other than root, or world read-writable.
func checkKVMGroup(cfg *config.Config, h Host, used bool) Result {
	res := Result{Name: nameKVMGroup}
	if !used {
		res.Status, res.Detail = Skip, "KVM not used: guests run under TCG"
		return res
	}
	fi, err := h.Stat("/dev/kvm")
	if err != nil {
		res.Status, res.Detail = Skip, fmt.Sprintf("KVM not used: %v", err)
		return res
	}
	perm := fi.Mode().Perm()
	uid, gid := uint32(0), uint32(0)
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		uid, gid = st.Uid, st.Gid
	}
	owner := fmt.Sprintf("%s:%s %04o", idName(h, "/etc/passwd", uid), idName(h, "/etc/group", gid), perm)
	if !cfg.Jail.Enabled {
		res.Status, res.Detail = OK, "/dev/kvm is "+owner+"; the VMM opens it as root (jail.enabled = false)"
		return res
	}
	switch {
	case perm&0o006 == 0o006:
		res.Status, res.Detail = OK, "/dev/kvm is "+owner+": every user, the jail uids too, may open it"
	case gid != 0 && perm&0o060 == 0o060:
		res.Status = OK
		res.Detail = fmt.Sprintf("/dev/kvm is %s: jailed VMMs get group %s (gid %d) as a supplementary group", owner, idName(h, "/etc/group", gid), gid)
	default:
		// The shim (root) opens /dev/kvm and picks KVM; the jailed VMM
		// then cannot, and the VM does not start.
		res.Status = Fail
		res.Detail = "/dev/kvm is " + owner + ": a jailed VMM (a jail uid without capabilities) cannot open it, so VMs would not start"
		res.Fix = "give /dev/kvm to a group, read-write: chgrp kvm /dev/kvm && chmod 0660 /dev/kvm " +
			"(persist it with a udev rule: KERNEL==\"kvm\", GROUP=\"kvm\", MODE=\"0660\"); or set jail.enabled = false (not recommended)"
	}
	return res
}

// idName names id from the host's passwd or group file, or returns the
// number.
func idName(h Host, file string, id uint32) string {
	b, _ := h.ReadFile(file)
	want := strconv.FormatUint(uint64(id), 10)
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Split(l, ":")
		if len(f) > 2 && f[2] == want {
			return f[0]
		}
	}
	return want
}
