package jail

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/moby/sys/reexec"
	"golang.org/x/sys/unix"
)

// exitStageFailed is the stage's exit status when it could not confine
// the helper (the helper never ran).
const exitStageFailed = 125

func init() { reexec.Register(stageName, stageMain) }

// stageMain is the jail stage's main: it never returns.
func stageMain() {
	// Namespaces joined, no_new_privs and the pdeath signal belong to
	// this thread, which execs the helper.
	runtime.LockOSThread()
	if err := stage(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "veil-jail: %v\n", err)
		os.Exit(exitStageFailed)
	}
}

func stage(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("usage: %s <request fd>", stageName)
	}
	fd, err := strconv.Atoi(args[1])
	if err != nil || fd < 3 {
		return fmt.Errorf("bad request fd %q", args[1])
	}
	f := os.NewFile(uintptr(fd), "request")
	// Blocks until the parent released the stage; EOF without a request
	// means it gave up.
	b, err := io.ReadAll(io.LimitReader(f, maxRequest))
	_ = f.Close()
	if err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	if len(b) == 0 {
		return errors.New("no request: the parent gave up")
	}
	var req request
	if err := json.Unmarshal(b, &req); err != nil {
		return fmt.Errorf("decode request: %w", err)
	}
	s := &req.Spec
	if err := s.Validate(); err != nil {
		return err
	}
	if s.NetNS != "" {
		if err := joinNetNS(s.NetNS); err != nil {
			return err
		}
	}
	if s.OOMScoreAdj != nil {
		if err := setOOMScoreAdj(*s.OOMScoreAdj); err != nil {
			return err
		}
	}
	for _, rl := range s.Rlimits {
		// syscall.Setrlimit, not unix's: the Go runtime then does not
		// restore its saved RLIMIT_NOFILE at exec.
		if err := syscall.Setrlimit(rl.Resource, &syscall.Rlimit{Cur: rl.Soft, Max: rl.Hard}); err != nil {
			return fmt.Errorf("set rlimit %d to %d/%d: %w", rl.Resource, rl.Soft, rl.Hard, err)
		}
	}
	if s.Namespaces {
		if err := buildRoot(s); err != nil {
			return fmt.Errorf("build root: %w", err)
		}
	}
	if s.dropsPrivileges() {
		if err := dropPrivileges(s); err != nil {
			return err
		}
	}
	// The pdeath signal was cleared by the change of credentials; the
	// parent holds the forking thread until the helper exits.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("set pdeath signal: %w", err)
	}
	if s.NoNewPrivs || s.dropsPrivileges() {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("set no_new_privs: %w", err)
		}
	}
	if err := syscall.Exec(req.Path, req.Args, req.Env); err != nil {
		return fmt.Errorf("exec %s: %w", req.Path, err)
	}
	return nil
}

// setOOMScoreAdj sets the stage's oom_score_adj. Lowering it below the
// inherited value needs CAP_SYS_RESOURCE, which some hosts withhold even
// from root: the helper then keeps the inherited value, and the log says
// so (raising always works).
func setOOMScoreAdj(adj int) error {
	const path = "/proc/self/oom_score_adj"
	err := os.WriteFile(path, []byte(strconv.Itoa(adj)), 0)
	if err == nil {
		return nil
	}
	cur, rerr := os.ReadFile(path)
	if c, perr := strconv.Atoi(strings.TrimSpace(string(cur))); rerr == nil && perr == nil && adj < c && (errors.Is(err, os.ErrPermission) || errors.Is(err, unix.EPERM)) {
		fmt.Fprintf(os.Stderr, "veil-jail: oom_score_adj %d refused (lowering it needs CAP_SYS_RESOURCE): keeping %d\n", adj, c)
		return nil
	}
	return fmt.Errorf("set oom_score_adj %d: %w", adj, err)
}

func joinNetNS(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open network namespace: %w", err)
	}
	defer func() { _ = f.Close() }()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("join network namespace %s: %w", path, err)
	}
	return nil
}

// dropPrivileges empties the capability bounding set and switches to the
// Spec's uid and gid (every thread: syscall.Set*), which clears the
// permitted and effective sets.
func dropPrivileges(s *Spec) error {
	for c := 0; c <= unix.CAP_LAST_CAP; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	groups := make([]int, len(s.Groups))
	for i, g := range s.Groups {
		groups[i] = int(g)
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("set groups %v: %w", s.Groups, err)
	}
	if err := syscall.Setresgid(int(s.GID), int(s.GID), int(s.GID)); err != nil {
		return fmt.Errorf("set gid %d: %w", s.GID, err)
	}
	if err := syscall.Setresuid(int(s.UID), int(s.UID), int(s.UID)); err != nil {
		return fmt.Errorf("set uid %d: %w", s.UID, err)
	}
	return nil
}
