package statedir

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/moby/sys/mountinfo"
	"github.com/moby/sys/reexec"
	"golang.org/x/sys/unix"
)

// The share's container mounts live in virtiofsd's mount namespace only.
// Entering another mount namespace (setns CLONE_NEWNS) needs a thread
// that shares its filesystem context with no other, which a Go program's
// threads do; the shim, whose threads fork helpers with Pdeathsig set,
// must not end or repurpose one. So the work is done by a short-lived
// copy of the running binary (moby/sys/reexec), which locks its main
// goroutine to its thread, unshares CLONE_FS, enters the namespace and
// exits when done. Every binary that uses a Share calls reexec.Init
// first thing in main (and test binaries in TestMain).

// nsHelperName is the argv[0] under which the binary runs the helper.
const nsHelperName = "veil-share-mountns"

func init() { reexec.Register(nsHelperName, nsHelperMain) }

// nsRequest is what the helper is asked to do, on its stdin. Its fd 3 is
// the mount namespace; fds 4, 5, ... are the detached trees of Attach in
// order.
type nsRequest struct {
	// RootDev and RootIno identify the share's root: after entering the
	// namespace, its root directory must be it, or the helper refuses.
	RootDev uint64 `json:"root_dev"`
	RootIno uint64 `json:"root_ino"`
	// Attach are the places (relative to the share's root, made by the
	// host) where the trees are moved, in fd order.
	Attach []string `json:"attach,omitempty"`
	// Detach are mount points (relative to the share's root) to unmount
	// with everything below them.
	Detach []string `json:"detach,omitempty"`
	// List asks for the mount points strictly below these paths after
	// the attaches.
	List []string `json:"list,omitempty"`
}

// nsResponse is the helper's answer, on its stdout.
type nsResponse struct {
	// Mounts are the mount points found below List's paths, relative to
	// the share's root.
	Mounts []string `json:"mounts,omitempty"`
}

// maxHelperIO bounds what the helper reads as its request and what the
// shim keeps of its answer.
const maxHelperIO = 1 << 20

// runInServerNS runs req in the mount namespace ns with the trees.
func runInServerNS(ctx context.Context, ns *os.File, req nsRequest, trees []*detachedTree) (nsResponse, error) {
	if len(req.Attach) != len(trees) {
		return nsResponse{}, fmt.Errorf("mount namespace helper: %d places for %d trees", len(req.Attach), len(trees))
	}
	if err := ctx.Err(); err != nil {
		return nsResponse{}, fmt.Errorf("mount namespace helper: %w", err)
	}
	in, err := json.Marshal(req)
	if err != nil {
		return nsResponse{}, err
	}
	cmd := reexec.Command(nsHelperName)
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &limitedWriter{w: &stdout, n: maxHelperIO}
	cmd.Stderr = &limitedWriter{w: &stderr, n: maxHelperIO}
	cmd.ExtraFiles = []*os.File{ns}
	for _, t := range trees {
		cmd.ExtraFiles = append(cmd.ExtraFiles, t.f)
	}
	// Pdeathsig (set by reexec) fires when the forking thread ends: keep
	// the fork on a thread that this goroutine holds until the helper
	// was started, as runtime/proc does.
	runtime.LockOSThread()
	err = cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		return nsResponse{}, fmt.Errorf("start mount namespace helper: %w", err)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = cmd.Process.Kill()
		case <-done:
		}
	}()
	err = cmd.Wait()
	close(done)
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if ctx.Err() != nil {
			return nsResponse{}, fmt.Errorf("mount namespace helper: %w (%s)", ctx.Err(), msg)
		}
		return nsResponse{}, fmt.Errorf("in virtiofsd's mount namespace: %s (%w)", msg, err)
	}
	var resp nsResponse
	if err := json.Unmarshal(stdout.Bytes(), &resp); err != nil {
		return nsResponse{}, fmt.Errorf("mount namespace helper: bad answer: %w", err)
	}
	return resp, nil
}

// nsHelperMain is the helper process's main.
func nsHelperMain() {
	resp, err := nsHelper(io.LimitReader(os.Stdin, maxHelperIO))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(resp); err != nil {
		os.Exit(1)
	}
	os.Exit(0)
}

func nsHelper(in io.Reader) (nsResponse, error) {
	var req nsRequest
	if err := json.NewDecoder(in).Decode(&req); err != nil {
		return nsResponse{}, fmt.Errorf("read request: %w", err)
	}
	// Never unlocked: the process exits when done.
	runtime.LockOSThread()
	// This copy of the shim only moves and unmounts trees: it gains no
	// privilege by exec, and it never execs.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return nsResponse{}, fmt.Errorf("no_new_privs: %w", err)
	}
	// mountinfo of this thread, opened while /proc is reachable.
	self, err := os.Open("/proc/thread-self")
	if err != nil {
		return nsResponse{}, fmt.Errorf("open this thread's /proc: %w", err)
	}
	defer func() { _ = self.Close() }()
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return nsResponse{}, fmt.Errorf("unshare filesystem context: %w", err)
	}
	ns := os.NewFile(3, "mntns")
	if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNS); err != nil {
		return nsResponse{}, fmt.Errorf("enter mount namespace: %w", err)
	}
	root, err := openRoot("/")
	if err != nil {
		return nsResponse{}, fmt.Errorf("open the namespace's root: %w", err)
	}
	defer func() { _ = root.Close() }()
	var st unix.Stat_t
	if err := unix.Fstat(int(root.Fd()), &st); err != nil {
		return nsResponse{}, fmt.Errorf("stat the namespace's root: %w", err)
	}
	if st.Dev != req.RootDev || st.Ino != req.RootIno {
		return nsResponse{}, errors.New("the namespace's root is not the sandbox's share (virtiofsd has not set up its sandbox, or is not the share's server)")
	}
	for i, rel := range req.Attach {
		tree := os.NewFile(uintptr(4+i), "tree:"+rel)
		if err := attach(root, rel, tree); err != nil {
			return nsResponse{}, err
		}
	}
	for _, rel := range req.Detach {
		if err := detach(root, rel); err != nil {
			return nsResponse{}, err
		}
	}
	var resp nsResponse
	if len(req.List) > 0 {
		f, err := openIn(self, "mountinfo")
		if err != nil {
			return nsResponse{}, err
		}
		defer func() { _ = f.Close() }()
		ms, err := mountinfo.GetMountsFromReader(f, nil)
		if err != nil {
			return nsResponse{}, fmt.Errorf("read mountinfo: %w", err)
		}
		for _, m := range ms {
			for _, l := range req.List {
				if rel, ok := strings.CutPrefix(m.Mountpoint, "/"+l+"/"); ok {
					resp.Mounts = append(resp.Mounts, filepath.Join(l, rel))
				}
			}
		}
	}
	return resp, nil
}

// openIn opens the file name in the (procfs) directory dir.
func openIn(dir *os.File, name string) (*os.File, error) {
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s/%s: %w", dir.Name(), name, err)
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir.Name(), name)), nil
}

// attach moves tree onto rel, resolved beneath root without symlinks.
func attach(root *os.File, rel string, tree *os.File) error {
	target, err := openBeneath(root, rel, unix.O_PATH)
	if err != nil {
		return fmt.Errorf("mount point %s: %w", rel, err)
	}
	defer func() { _ = target.Close() }()
	if err := unix.MoveMount(int(tree.Fd()), "", int(target.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("move mount onto %s: %w", rel, err)
	}
	return nil
}

// detach unmounts everything stacked on rel and below it. Only the
// parent is resolved (beneath root, no symlinks); the last element is
// unmounted relative to it, without following it.
func detach(root *os.File, rel string) error {
	if err := checkRel(rel); err != nil {
		return err
	}
	parent := root
	if dir := filepath.Dir(rel); dir != "." {
		p, err := openDirBeneath(root, dir)
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("unmount %s: %w", rel, err)
		}
		defer func() { _ = p.Close() }()
		parent = p
	}
	// This thread's filesystem context is its own (CLONE_FS unshared).
	if err := unix.Fchdir(int(parent.Fd())); err != nil {
		return fmt.Errorf("unmount %s: %w", rel, err)
	}
	name := filepath.Base(rel)
	for range 16 {
		err := unix.Unmount(name, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("unmount %s: %w", rel, err)
		}
	}
	return fmt.Errorf("unmount %s: still mounted after 16 unmounts", rel)
}

// limitedWriter keeps at most n bytes and drops the rest.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	size := len(p)
	if len(p) > l.n {
		p = p[:l.n]
	}
	if len(p) > 0 {
		if _, err := l.w.Write(p); err != nil {
			return 0, err
		}
		l.n -= len(p)
	}
	return size, nil
}
