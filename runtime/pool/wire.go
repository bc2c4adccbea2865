package pool

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// The daemon, keepers and shims speak JSON, one object per line, strictly
// request then answer; a file descriptor rides along with an answer as
// SCM_RIGHTS.

// maxMessage bounds one message (a list of 256 VMs fits many times).
const maxMessage = 1 << 20

// request is what a shim, `veil pool`, or a keeper's owner sends.
type request struct {
	// Op is "claim" or "list" (to the daemon), "claim" (daemon to keeper).
	Op string `json:"op"`
	// Key is the claimant's pool key (Key).
	Key string `json:"key,omitempty"`
	// ID is the sandbox that claims the VM.
	ID string `json:"id,omitempty"`
	// Deadline is when the claimant stops waiting (Unix nanoseconds):
	// the daemon gives no VM past it.
	Deadline int64 `json:"deadline,omitempty"`
}

// reply is the answer to a request, and a keeper's report to its owner.
type reply struct {
	// Error, when set, says why the request failed; Reason is one of the
	// reasons below for failures that mean "start cold".
	Error  string `json:"error,omitempty"`
	Reason string `json:"reason,omitempty"`
	// State is a keeper's report: "ready", "failed" or "claimed".
	State string `json:"state,omitempty"`
	// VM names a claimed VM (its owner connection and its keeper's pidfd
	// ride along); a keeper's ready report carries its pid, key and boot
	// time.
	VM        string  `json:"vm,omitempty"`
	KeeperPid int     `json:"keeper_pid,omitempty"`
	Key       string  `json:"key,omitempty"`
	BootSecs  float64 `json:"boot_secs,omitempty"`
	VMs       []VM    `json:"vms,omitempty"`
	Size      int     `json:"size,omitempty"`
	PoolKey   string  `json:"pool_key,omitempty"`
	Failures  int     `json:"failures,omitempty"`
	LastError string  `json:"last_error,omitempty"`
}

// Reasons a claim fails that mean "start cold".
const (
	reasonEmpty    = "empty"
	reasonMismatch = "mismatch"
	// reasonExists is not "start cold": the sandbox id is taken.
	reasonExists = "exists"
)

// send writes v as one line, with files (at most maxFiles) as
// SCM_RIGHTS.
func send(c *net.UnixConn, v any, files []*os.File, deadline time.Time) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_ = c.SetWriteDeadline(deadline)
	defer func() { _ = c.SetWriteDeadline(time.Time{}) }()
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	n, oobn, err := c.WriteMsgUnix(b, oob, nil)
	if err != nil {
		return err
	}
	if n != len(b) || oobn != len(oob) {
		return fmt.Errorf("short write (%d of %d bytes, %d of %d control bytes)", n, len(b), oobn, len(oob))
	}
	return nil
}

// maxFiles is the most descriptors one message carries.
const maxFiles = 2

// receive reads one line into v, and the descriptors that came with it
// (at most maxFiles). A zero deadline waits as long as it takes. On error
// every descriptor received is closed.
func receive(c *net.UnixConn, v any, deadline time.Time) (_ []*os.File, retErr error) {
	_ = c.SetReadDeadline(deadline)
	defer func() { _ = c.SetReadDeadline(time.Time{}) }()
	var (
		buf   []byte
		files []*os.File
	)
	defer func() {
		if retErr != nil {
			closeFiles(files)
		}
	}()
	chunk := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(4*(maxFiles+1)))
	for {
		n, oobn, flags, _, err := c.ReadMsgUnix(chunk, oob)
		n, oobn = max(n, 0), max(oobn, 0)
		if oobn > 0 {
			fs, ferr := rights(oob[:oobn])
			files = append(files, fs...)
			if ferr != nil {
				return nil, ferr
			}
			if flags&unix.MSG_CTRUNC != 0 || len(files) > maxFiles {
				return nil, fmt.Errorf("more than %d file descriptors", maxFiles)
			}
		}
		buf = append(buf, chunk[:n]...)
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			if i != len(buf)-1 {
				return nil, errors.New("more than one message at once")
			}
			if err := json.Unmarshal(buf[:i], v); err != nil {
				return nil, fmt.Errorf("bad message: %w", err)
			}
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, errors.New("connection closed")
		}
		if len(buf) > maxMessage {
			return nil, fmt.Errorf("message over %d bytes", maxMessage)
		}
	}
}

// rights turns SCM_RIGHTS messages into files; any other control
// message is refused.
func rights(oob []byte) ([]*os.File, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var files []*os.File
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			return files, fmt.Errorf("control message: %w", err)
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "pool-fd"))
		}
	}
	return files, nil
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}

// unixConn makes a connection of a socket descriptor; f stays the
// caller's to close.
func unixConn(f *os.File) (*net.UnixConn, error) {
	c, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		_ = c.Close()
		return nil, fmt.Errorf("descriptor %d is not a Unix socket", f.Fd())
	}
	return uc, nil
}

// peerIsOwn reports whether the process at the other end of c runs as
// this process's user (SO_PEERCRED): root, for the daemon of a real
// host; no other user can claim a VM, or see the pool.
func peerIsOwn(c *net.UnixConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	if int(cred.Uid) != os.Geteuid() {
		return fmt.Errorf("peer pid %d runs as uid %d, not %d", cred.Pid, cred.Uid, os.Geteuid())
	}
	return nil
}
