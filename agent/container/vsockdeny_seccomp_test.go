//go:build cgo && seccomp

package container

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/runc/libcontainer/seccomp"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// filterChildEnv carries the seccomp profile (JSON) a re-executed test
// binary loads before it tries its sockets; "none" loads nothing.
const filterChildEnv = "VEIL_TEST_VSOCK_FILTER"

// probeFamilies are the families the child passes to socket(2), in its
// output's order; vsockhi is AF_VSOCK with a bit set above the 32 the
// kernel reads.
var probeFamilies = []struct {
	name   string
	family uint64
}{{"vsock", unix.AF_VSOCK}, {"vsockhi", 1<<32 | unix.AF_VSOCK}, {"unix", unix.AF_UNIX}, {"inet", unix.AF_INET}}

// probeResult is what socket(2) did: the errno, or 0 and the domain of
// the socket it opened.
type probeResult struct {
	errno  unix.Errno
	domain int
}

func (r probeResult) String() string {
	if r.errno != 0 {
		return unix.ErrnoName(r.errno)
	}
	return fmt.Sprintf("ok (domain %d)", r.domain)
}

// TestVsockDenyFilter loads rewritten profiles into a child process with
// the agent's own seccomp code (runc's libcontainer/seccomp over the
// libseccomp the static agent links: -tags seccomp, as `make build`) and
// calls socket(2), to check the rule precedence denyVsock relies on and
// not only the profile it writes. The "unsafe" cases are the rewrites it
// does not do, and show why: libseccomp lets an unconditional rule replace
// a syscall's conditional ones, and a comparison of all 64 bits misses
// 1<<32|AF_VSOCK.
//
// It runs with `go test -tags seccomp ./agent/container/` (no root).
func TestVsockDenyFilter(t *testing.T) {
	if p, ok := os.LookupEnv(filterChildEnv); ok {
		filterChild(p)
		return
	}
	base := probe(t, nil)
	t.Logf("without a filter: %v", base)
	for _, f := range []string{"vsock", "vsockhi"} {
		if base[f].errno == unix.EPERM {
			t.Skipf("socket(%s) fails with EPERM here without a filter: the filter's EPERM cannot be told apart", f)
		}
		if base[f].errno == 0 && base[f].domain != unix.AF_VSOCK {
			t.Fatalf("socket(%s) opened a socket of domain %d", f, base[f].domain)
		}
	}
	eperm, enosys := uint(unix.EPERM), uint(unix.ENOSYS)
	// rdSocket is containerd's default profile with its socket rules
	// replaced by one with the family condition fam (none: nil), under
	// the default errno ret (nil: EPERM).
	rdSocket := func(ret *uint, fam ...specs.LinuxSeccompArg) *specs.LinuxSeccomp {
		p := runtimeDefaultProfile()
		p.DefaultErrnoRet = ret
		p.Syscalls = slices.DeleteFunc(p.Syscalls, func(r specs.LinuxSyscall) bool { return slices.Equal(r.Names, []string{"socket"}) })
		p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: []string{"socket"}, Action: specs.ActAllow, Args: fam})
		return p
	}
	logSocket := func(arches ...specs.Arch) *specs.LinuxSeccomp {
		return &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: arches,
			Syscalls: []specs.LinuxSyscall{{Names: []string{"socket"}, Action: specs.ActLog}}}
	}
	// Rewrites denyVsock does not do.
	appendEQ := func(l *specs.Linux) {
		if l.Seccomp == nil {
			l.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}
		}
		l.Seccomp.Syscalls = append(l.Seccomp.Syscalls, specs.LinuxSyscall{Names: []string{"socket"}, Action: specs.ActErrno, ErrnoRet: &eperm,
			Args: []specs.LinuxSeccompArg{famEQ(unix.AF_VSOCK)}})
	}
	appendMasked := func(l *specs.Linux) { l.Seccomp.Syscalls = append(l.Seccomp.Syscalls, vsockDeny()) }
	cases := []struct {
		name    string
		profile *specs.LinuxSeccomp
		rewrite func(*specs.Linux)
		// open lists the vsock probes that are not denied (they do what
		// they do without a filter); the others must fail with EPERM.
		// AF_UNIX and AF_INET must always behave as without a filter.
		open []string
	}{
		{name: "unconfined", rewrite: denyVsock},
		{name: "containerd runtime default", profile: runtimeDefaultProfile(), rewrite: denyVsock},
		{name: "default allow, socket logged", profile: logSocket(), rewrite: denyVsock},
		{name: "default allow, socket logged, 32-bit arches listed", profile: logSocket(specs.ArchX86_64, specs.ArchX86, specs.ArchX32), rewrite: denyVsock},
		{name: "default errno, socket allowed", profile: rdSocket(nil), rewrite: denyVsock},
		{name: "default ENOSYS, socket allowed", profile: rdSocket(&enosys), rewrite: denyVsock},
		{name: "default ENOSYS, socket allowed below 46", profile: rdSocket(&enosys, famOp(specs.OpLessThan, 46)), rewrite: denyVsock},
		{name: "default ENOSYS, socket allowed from 1", profile: rdSocket(&enosys, famOp(specs.OpGreaterEqual, 1)), rewrite: denyVsock},
		{name: "default ENOSYS, socket allowed but AF_VSOCK", profile: rdSocket(&enosys, famOp(specs.OpNotEqual, unix.AF_VSOCK)), rewrite: denyVsock},
		{name: "default ENOSYS, socket allowed by a mask", profile: rdSocket(&enosys, famMasked(0, 0)), rewrite: denyVsock},
		{name: "unsafe: family == AF_VSOCK denied, unconfined", rewrite: appendEQ, open: []string{"vsockhi"}},
		{name: "unsafe: denial appended to an unconditional rule", profile: logSocket(), rewrite: appendMasked, open: []string{"vsock", "vsockhi"}},
		{name: "unsafe: denial appended to family != AF_VSOCK", profile: rdSocket(&enosys, famOp(specs.OpNotEqual, unix.AF_VSOCK)), rewrite: appendMasked, open: []string{"vsockhi"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := &specs.Linux{Seccomp: tc.profile}
			tc.rewrite(l)
			got := probe(t, l.Seccomp)
			for _, f := range probeFamilies {
				want := base[f.name]
				if strings.HasPrefix(f.name, "vsock") && !slices.Contains(tc.open, f.name) {
					want = probeResult{errno: unix.EPERM, domain: -1}
				}
				if got[f.name] != want {
					t.Errorf("socket(%s): %v, want %v", f.name, got[f.name], want)
				}
			}
		})
	}
}

// probe runs the test binary as a child that loads p (none when nil) and
// returns what socket(family, SOCK_STREAM, 0) did per family name.
func probe(t *testing.T, p *specs.LinuxSeccomp) map[string]probeResult {
	t.Helper()
	arg := "none"
	if p != nil {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		arg = string(b)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestVsockDenyFilter$")
	cmd.Env = append(os.Environ(), filterChildEnv+"="+arg)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("filter child: %v: %s", err, out)
	}
	got := map[string]probeResult{}
	for _, line := range strings.Split(string(out), "\n") {
		var name string
		var e, d int
		if n, _ := fmt.Sscanf(line, "probe %s %d %d", &name, &e, &d); n == 3 {
			got[name] = probeResult{unix.Errno(e), d}
		}
	}
	if len(got) != len(probeFamilies) {
		t.Fatalf("filter child output: %s", out)
	}
	return got
}

// filterChild loads the profile in arg on this thread, as runc's init
// does, and prints "probe <family> <errno> <domain>" per family.
func filterChild(arg string) {
	runtime.LockOSThread()
	if arg != "none" {
		var p specs.LinuxSeccomp
		if err := json.Unmarshal([]byte(arg), &p); err != nil {
			fatalChild(err)
		}
		cfg, err := specconv.SetupSeccomp(&p)
		if err != nil {
			fatalChild(err)
		}
		// Without CAP_SYS_ADMIN a filter needs no_new_privs.
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			fatalChild(err)
		}
		if _, err := seccomp.InitSeccomp(cfg); err != nil {
			fatalChild(err)
		}
	}
	var b strings.Builder
	for _, f := range probeFamilies {
		// Raw, so that all 64 bits of the family reach the kernel.
		fd, _, e := unix.RawSyscall(unix.SYS_SOCKET, uintptr(f.family), unix.SOCK_STREAM, 0)
		domain := -1
		if e == 0 {
			domain, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
			_ = unix.Close(int(fd))
		}
		fmt.Fprintf(&b, "probe %s %d %d\n", f.name, int(e), domain)
	}
	_, _ = os.Stdout.WriteString(b.String())
	os.Exit(0)
}

func fatalChild(err error) {
	fmt.Fprintln(os.Stderr, "filter child:", err)
	os.Exit(3)
}
