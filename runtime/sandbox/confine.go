package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/veil-runtime/veil/runtime/cgroup"
	"github.com/veil-runtime/veil/runtime/jail"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// leaseUID takes the sandbox's jail uid when the jail is on, and records
// it for Cleanup; on failure nothing stays leased.
func (s *Sandbox) leaseUID() error {
	if !s.cfg.Jail.Enabled {
		return nil
	}
	l, err := jail.Acquire(s.cfg.StateDir, s.cfg.Jail.UIDBase, s.cfg.Jail.UIDCount, s.id)
	if err != nil {
		return err
	}
	if err := os.WriteFile(s.dir.File(statedir.JailUIDFile), []byte(strconv.FormatUint(uint64(l.UID), 10)+"\n"), 0o600); err != nil {
		// Not leased yet for the caller's rollback: give it back here.
		return errors.Join(err, l.Release())
	}
	s.lease = l
	return nil
}

// uid is the jail uid (and gid), 0 without the jail.
func (s *Sandbox) uid() uint32 {
	if s.lease == nil {
		return 0
	}
	return s.lease.UID
}

// vmmJail is the VMM's and vhost-device-vsock's jail (the driver adds
// namespaces and binds), nil without the jail.
func (s *Sandbox) vmmJail(oom *int) *jail.Spec {
	if s.lease == nil {
		return nil
	}
	// The guest's RAM is a memfd, a file: the size limit cannot be below
	// the most the VM may have.
	fsize := max(s.cfg.Jail.RlimitFsizeMiB, uint64(s.cfg.Guest.MemoryMiB)+uint64(s.cfg.Guest.HotplugMemoryMiB)) << 20
	return &jail.Spec{
		UID: s.lease.UID, GID: s.lease.UID,
		Rlimits: []jail.Rlimit{
			{Resource: unix.RLIMIT_NOFILE, Soft: s.cfg.Jail.RlimitNofile, Hard: s.cfg.Jail.RlimitNofile},
			{Resource: unix.RLIMIT_FSIZE, Soft: fsize, Hard: fsize},
		},
		OOMScoreAdj: oomOrZero(oom),
		NoNewPrivs:  true,
	}
}

// virtiofsdJail confines virtiofsd without taking its root: it runs its
// own namespace sandbox and seccomp filter, so only oom_score_adj and
// no_new_privs come from here (its open files are bounded by its own
// --rlimit-nofile; a file size limit would bound the guest's files).
func (s *Sandbox) virtiofsdJail(oom *int) *jail.Spec {
	return &jail.Spec{OOMScoreAdj: oomOrZero(oom), NoNewPrivs: true}
}

func oomOrZero(oom *int) *int {
	if oom != nil {
		return oom
	}
	zero := 0
	return &zero
}

// createCgroup makes the sandbox cgroup when cgroups are on, and records
// its path for Cleanup.
func (s *Sandbox) createCgroup(ctx context.Context, opts Options) error {
	if !s.cfg.Cgroups.Enabled {
		return nil
	}
	path, err := cgroup.Path(opts.CgroupsPath, opts.CRI, s.cfg.Cgroups.Parent, s.id)
	if err != nil {
		return err
	}
	if err := os.WriteFile(s.dir.File(statedir.CgroupFile), []byte(path+"\n"), 0o600); err != nil {
		return fmt.Errorf("record cgroup: %w", err)
	}
	cg, err := cgroup.Create(ctx, path, s.limits(s.cfg.Guest.VCPUs, uint64(s.cfg.Guest.MemoryMiB)))
	if err != nil {
		return err
	}
	s.cg = cg
	return nil
}

// limits are the sandbox cgroup's limits for a VM of vcpus and memoryMiB:
// its vCPUs can use no more CPU than that many (a guest onlining its
// reserve gains nothing), and its memory is the guest's plus the
// configured overhead.
func (s *Sandbox) limits(vcpus uint32, memoryMiB uint64) cgroup.Limits {
	return cgroup.Limits{
		MemoryBytes: int64(memoryMiB+uint64(s.cfg.Cgroups.MemoryOverheadMiB)) << 20,
		Pids:        s.cfg.Cgroups.PidsLimit,
		CPUs:        float64(vcpus),
	}
}

// placer is the cgroup as the helpers' starters see it (nil interface
// without one).
func (s *Sandbox) placer() interface{ Add(int) error } {
	if s.cg == nil {
		return nil
	}
	return s.cg
}

// cleanupConfinement removes a dead sandbox's cgroup, killing what is
// left in it, and its uid lease file when no one holds it.
func cleanupConfinement(ctx context.Context, stateDir string, dir statedir.Dir) error {
	if p, err := statedir.CgroupPath(dir); err == nil && p != "" {
		cg, err := cgroup.Load(p)
		if err == nil {
			err = cg.Delete(ctx)
		}
		if err != nil {
			return fmt.Errorf("remove cgroup %s: %w", p, err)
		}
	}
	return releaseStaleLease(stateDir, dir)
}

// releaseStaleLease removes the uid lease recorded in dir when no one
// holds it any more (its holder died, or was a warm pool keeper that
// exited).
func releaseStaleLease(stateDir string, dir statedir.Dir) error {
	if b, err := os.ReadFile(dir.File(statedir.JailUIDFile)); err == nil {
		if uid, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err == nil {
			if err := jail.ReleaseStale(stateDir, uint32(uid)); err != nil {
				return err
			}
		}
	}
	return nil
}

// RaiseOOMScoreAdj makes every helper of the sandbox at least as
// killable as a container of the pod with oom_score_adj adj (the VM
// holds the containers' memory): the helpers take max(current, adj).
func (s *Sandbox) RaiseOOMScoreAdj(adj int) error {
	s.oomMu.Lock()
	defer s.oomMu.Unlock()
	if adj <= s.oomAdj {
		return nil
	}
	var pids []int
	if s.cg != nil {
		var err error
		if pids, err = s.cg.Pids(); err != nil {
			return err
		}
	} else {
		for _, p := range s.Pids() {
			pids = append(pids, p)
		}
	}
	s.oomAdj = adj
	return writeOOMScoreAdj(pids, adj)
}

// writeOOMScoreAdj gives each of pids oom_score_adj adj; a process that
// exited meanwhile is not an error.
func writeOOMScoreAdj(pids []int, adj int) error {
	var errs []error
	for _, pid := range pids {
		p := fmt.Sprintf("/proc/%d/oom_score_adj", pid)
		if err := os.WriteFile(p, []byte(strconv.Itoa(adj)), 0); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
