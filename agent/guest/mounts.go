package guest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

// mount is one file system PID 1 mounts.
type mount struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
	mode                   os.FileMode
}

const (
	nosuid = unix.MS_NOSUID
	nodev  = unix.MS_NODEV
	noexec = unix.MS_NOEXEC
)

// earlyMounts are needed before anything else (console, module loading).
var earlyMounts = []mount{
	{"proc", "/proc", "proc", nosuid | nodev | noexec, "", 0o555},
	{"sysfs", "/sys", "sysfs", nosuid | nodev | noexec, "", 0o555},
	{"devtmpfs", "/dev", "devtmpfs", nosuid, "mode=0755", 0o755},
}

// lateMounts follow the early ones.
var lateMounts = []mount{
	{"devpts", "/dev/pts", "devpts", nosuid | noexec, "newinstance,ptmxmode=0666,mode=0620,gid=5", 0o755},
	{"shm", "/dev/shm", "tmpfs", nosuid | nodev, "mode=1777", 0o1777},
	{"tmpfs", "/run", "tmpfs", nosuid | nodev, "mode=0755", 0o755},
	{"tmpfs", "/tmp", "tmpfs", nosuid | nodev, "mode=1777", 0o1777},
	{"cgroup2", "/sys/fs/cgroup", "cgroup2", nosuid | nodev | noexec, "nsdelegate", 0o555},
}

func (m mount) do() error {
	if err := os.MkdirAll(m.target, m.mode); err != nil {
		return fmt.Errorf("mkdir %s: %w", m.target, err)
	}
	err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data)
	if errors.Is(err, unix.EBUSY) {
		return nil // already mounted (e.g. devtmpfs automount)
	}
	if err != nil && m.fstype == "cgroup2" && strings.Contains(m.data, "nsdelegate") {
		err = unix.Mount(m.source, m.target, m.fstype, m.flags, "")
	}
	if err != nil {
		return fmt.Errorf("mount %s on %s (%s, %q): %w", m.source, m.target, m.fstype, m.data, err)
	}
	return nil
}

// mountAll mounts ms in order and stops at the first failure.
func mountAll(ms []mount) error {
	for _, m := range ms {
		if err := m.do(); err != nil {
			return err
		}
	}
	return nil
}

// movableRoot makes "/" a mount with a parent: the initramfs root cannot
// be pivot_root'ed, which runc needs for every container. It bind-mounts
// the root onto a directory of itself, moves that mount over "/" and
// chroots into it, as switch_root does without copying anything.
func movableRoot() error {
	const dir = "/.veil-root"
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("mkdir %s: %w", dir, err)
	}
	if err := unix.Mount("/", dir, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind / on %s: %w", dir, err)
	}
	if err := unix.Chdir(dir); err != nil {
		return fmt.Errorf("chdir %s: %w", dir, err)
	}
	if err := unix.Mount(dir, "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move %s to /: %w", dir, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	_ = os.Remove(dir)
	return nil
}

// isInitramfsRoot reports whether "/" is the kernel's rootfs (ramfs or
// tmpfs without a parent mount), which pivot_root refuses.
func isInitramfsRoot() bool {
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil {
		return false
	}
	return st.Type == unix.RAMFS_MAGIC || st.Type == unix.TMPFS_MAGIC
}

// enableControllers turns on every available cgroup v2 controller for the
// root's children.
func enableControllers(ctx context.Context, root string) error {
	b, err := os.ReadFile(root + "/cgroup.controllers")
	if err != nil {
		return fmt.Errorf("read cgroup controllers: %w", err)
	}
	var errs []error
	for _, c := range strings.Fields(string(b)) {
		if err := os.WriteFile(root+"/cgroup.subtree_control", []byte("+"+c), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("enable cgroup controller %s: %w", c, err))
		}
	}
	log.G(ctx).Infof("cgroup v2 controllers: %s", strings.TrimSpace(string(b)))
	return errors.Join(errs...)
}
