package container

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// holderDenied are the system calls the pod holder's seccomp filter
// refuses with EPERM. The holder needs none of them once set up, and
// each is what a process of the pod that can ptrace it (CAP_SYS_PTRACE
// in a pod sharing its PID namespace) could make it do for itself: open
// sockets (AF_VSOCK to the host above all: every container's filter
// refuses it, RewriteSpec), run programs, change mounts or namespaces,
// trace others, load BPF or reach keys. (clone3 stays: glibc makes
// threads with it; new namespaces need capabilities the holder lacks.)
var holderDenied = []uintptr{
	unix.SYS_SOCKET, unix.SYS_SOCKETPAIR, unix.SYS_CONNECT, unix.SYS_EXECVE, unix.SYS_EXECVEAT,
	unix.SYS_PTRACE, unix.SYS_PROCESS_VM_READV, unix.SYS_PROCESS_VM_WRITEV,
	unix.SYS_MOUNT, unix.SYS_UMOUNT2, unix.SYS_PIVOT_ROOT, unix.SYS_CHROOT,
	unix.SYS_UNSHARE, unix.SYS_SETNS,
	unix.SYS_BPF, unix.SYS_KEYCTL, unix.SYS_ADD_KEY, unix.SYS_REQUEST_KEY,
	unix.SYS_OPEN_BY_HANDLE_AT, unix.SYS_IO_URING_SETUP, unix.SYS_USERFAULTFD, unix.SYS_PERF_EVENT_OPEN,
}

// holderArch is the seccomp audit arch of this build, 0 where the holder
// has no filter (and so is not used; holderFor).
var holderArch = map[string]uint32{
	"amd64": unix.AUDIT_ARCH_X86_64,
	"arm64": unix.AUDIT_ARCH_AARCH64,
}[runtime.GOARCH]

// holderFilter is the holder's seccomp program: another architecture's
// calls (i386 on x86_64) and x32 calls are refused, the denied calls get
// EPERM, everything else is allowed.
func holderFilter() []unix.SockFilter {
	const (
		ldW   = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jge   = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
		ret   = unix.BPF_RET | unix.BPF_K
		eperm = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	)
	f := []unix.SockFilter{
		{Code: ldW, K: 4}, // seccomp_data.arch
		{Code: jeq, Jt: 1, Jf: 0, K: holderArch},
		{Code: ret, K: eperm},
		{Code: ldW, K: 0}, // seccomp_data.nr
	}
	if runtime.GOARCH == "amd64" {
		f = append(f, unix.SockFilter{Code: jge, Jt: 0, Jf: 1, K: 0x40000000}, unix.SockFilter{Code: ret, K: eperm})
	}
	for _, nr := range holderDenied {
		f = append(f, unix.SockFilter{Code: jeq, Jt: 0, Jf: 1, K: uint32(nr)}, unix.SockFilter{Code: ret, K: eperm})
	}
	return append(f, unix.SockFilter{Code: ret, K: unix.SECCOMP_RET_ALLOW})
}

// loadHolderFilter installs holderFilter on every thread of the process
// (TSYNC). It needs no_new_privs on the calling thread or CAP_SYS_ADMIN.
func loadHolderFilter() error {
	if holderArch == 0 {
		return fmt.Errorf("no pod holder seccomp filter for %s", runtime.GOARCH)
	}
	f := holderFilter()
	prog := unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(f)
	if errno != 0 {
		return fmt.Errorf("load the holder's seccomp filter: %w", errno)
	}
	if r != 0 {
		return fmt.Errorf("load the holder's seccomp filter: thread %d could not take it", r)
	}
	return nil
}
