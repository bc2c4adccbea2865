package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// IsHolder reports whether this process is the agent started again as a
// pod holder (holder.go).
func IsHolder() bool {
	return len(os.Args) == 1 && os.Args[0] == holderName && os.Getenv(HolderEnv) != ""
}

// RunHolder is the pod holder's main: it applies the setup the agent
// sends, answers, then reaps and waits until SIGTERM or SIGINT, which
// end it with status 0, as pause does. It does not return.
func RunHolder() {
	sock := os.NewFile(holderSetupFD, "holder-setup")
	if err := holdSetup(sock); err != nil {
		msg := err.Error()
		if len(msg) > 1024 {
			msg = msg[:1024]
		}
		_, _ = sock.Write([]byte(msg))
		os.Exit(1)
	}
	// Every signal is relayed and all but these three dropped: pause has
	// no handler for the others, so as its namespace's PID 1 it never
	// sees them, where the Go runtime would exit on them.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs)
	if _, err := sock.Write([]byte(holderOK)); err != nil {
		os.Exit(1)
	}
	_ = sock.Close()
	reapOrphans()
	for s := range sigs {
		switch s {
		case unix.SIGCHLD:
			reapOrphans()
		case unix.SIGTERM, unix.SIGINT:
			os.Exit(0)
		}
	}
}

// holdSetup applies the agent's setup in the holder's new namespaces,
// then leaves the holder nothing: an empty read-only root, no
// capabilities, holderUID, not dumpable (so no process of the pod can
// ptrace it or reach its root through /proc without CAP_SYS_PTRACE).
func holdSetup(sock *os.File) error {
	_ = os.Unsetenv(HolderEnv)
	buf := make([]byte, holderMsgMax+1)
	n, err := sock.Read(buf)
	if err != nil {
		return fmt.Errorf("read setup: %w", err)
	}
	if n > holderMsgMax {
		return fmt.Errorf("setup longer than %d bytes", holderMsgMax)
	}
	var s holderSetup
	if err := json.Unmarshal(buf[:n], &s); err != nil {
		return fmt.Errorf("parse setup: %w", err)
	}
	if s.Hostname != "" {
		if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
			return fmt.Errorf("set hostname %q: %w", s.Hostname, err)
		}
	}
	if s.Domainname != "" {
		if err := unix.Setdomainname([]byte(s.Domainname)); err != nil {
			return fmt.Errorf("set domainname %q: %w", s.Domainname, err)
		}
	}
	for k, v := range s.Sysctl {
		if err := writeSysctl(k, v); err != nil {
			return err
		}
	}
	if s.OOMScoreAdj != nil {
		if err := os.WriteFile("/proc/self/oom_score_adj", []byte(fmt.Sprint(*s.OOMScoreAdj)), 0); err != nil {
			return fmt.Errorf("set oom_score_adj %d: %w", *s.OOMScoreAdj, err)
		}
	}
	if err := emptyRoot(); err != nil {
		return err
	}
	// While still root (CAP_SYS_ADMIN stands in for no_new_privs).
	if err := loadHolderFilter(); err != nil {
		return err
	}
	return dropPrivileges()
}

// writeSysctl writes one sysctl of the holder's namespaces (libcontainer's
// validation allowed only namespaced keys).
func writeSysctl(k, v string) error {
	if k == "" || strings.Contains(k, "/") || strings.Contains(k, "..") {
		return fmt.Errorf("sysctl %q: not a sysctl name", k)
	}
	p := filepath.Join("/proc/sys", strings.ReplaceAll(k, ".", "/"))
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("sysctl %s: %w", k, err)
	}
	_, err = f.WriteString(v)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sysctl %s=%q: %w", k, v, err)
	}
	return nil
}

// emptyRoot makes the holder's root an empty read-only tmpfs in its own
// mount namespace, the rest of the guest's mounts detached.
func emptyRoot() error {
	const dir = "/proc" // any directory; the tmpfs goes over it in this namespace only
	steps := []struct {
		what string
		do   func() error
	}{
		{"make mounts private", func() error { return unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "") }},
		{"mount the empty root", func() error {
			return unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=4k,nr_inodes=8,mode=0555")
		}},
		{"enter it", func() error { return unix.Chdir(dir) }},
		{"pivot_root", func() error { return unix.PivotRoot(".", ".") }},
		{"detach the old root", func() error { return unix.Unmount(".", unix.MNT_DETACH) }},
		{"chdir /", func() error { return unix.Chdir("/") }},
		{"make the root read-only", func() error {
			return unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
		}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
	}
	return nil
}

// dropPrivileges switches every thread to holderUID/holderGID, which
// clears every capability, and makes the process not dumpable.
func dropPrivileges() error {
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setresgid(holderGID, holderGID, holderGID); err != nil {
		return fmt.Errorf("setresgid %d: %w", holderGID, err)
	}
	if err := syscall.Setresuid(holderUID, holderUID, holderUID); err != nil {
		return fmt.Errorf("setresuid %d: %w", holderUID, err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	for _, d := range data {
		if d.Effective != 0 || d.Permitted != 0 || d.Inheritable != 0 {
			return errors.New("capabilities left after the switch to the holder's user")
		}
	}
	// A change of credentials resets dumpable, so this comes last.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("set not dumpable: %w", err)
	}
	return nil
}

// reapOrphans waits for every exited child: processes of the pod's PID
// namespace whose parents died are the holder's, as they are pause's.
func reapOrphans() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
