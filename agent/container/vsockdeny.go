package container

import (
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// denyVsock makes the spec's seccomp profile refuse socket(AF_VSOCK, ...)
// with EPERM, whatever the profile allows otherwise: AF_VSOCK is not
// namespaced in the guest kernel, and a container has no business with
// the host's vsock ports. An Unconfined container (no profile) gets a
// profile that allows everything else.
//
// A permissive rule naming socket without a condition on its first
// argument would allow AF_VSOCK too (libseccomp keeps an unconditional
// rule of a syscall over conditional ones), so socket is split out of
// such a rule with the condition "family != AF_VSOCK" added.
func denyVsock(l *specs.Linux) {
	if l.Seccomp == nil {
		l.Seccomp = &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		}
	}
	sc := l.Seccomp
	var out []specs.LinuxSyscall
	for _, r := range sc.Syscalls {
		if !permissive(r.Action) || !slices.Contains(r.Names, "socket") || hasArg(r.Args, 0) {
			out = append(out, r)
			continue
		}
		if rest := slices.DeleteFunc(slices.Clone(r.Names), func(n string) bool { return n == "socket" }); len(rest) > 0 {
			other := r
			other.Names = rest
			out = append(out, other)
		}
		only := r
		only.Names = []string{"socket"}
		only.Args = append(slices.Clone(r.Args), specs.LinuxSeccompArg{Index: 0, Value: unix.AF_VSOCK, Op: specs.OpNotEqual})
		out = append(out, only)
	}
	if !hasVsockDeny(out) {
		eperm := uint(unix.EPERM)
		out = append(out, specs.LinuxSyscall{
			Names:    []string{"socket"},
			Action:   specs.ActErrno,
			ErrnoRet: &eperm,
			Args:     []specs.LinuxSeccompArg{{Index: 0, Value: unix.AF_VSOCK, Op: specs.OpEqualTo}},
		})
	}
	sc.Syscalls = out
}

// permissive reports an action that lets the syscall run.
func permissive(a specs.LinuxSeccompAction) bool {
	switch a {
	case specs.ActAllow, specs.ActLog, specs.ActTrace, specs.ActNotify:
		return true
	}
	return false
}

func hasArg(args []specs.LinuxSeccompArg, index uint) bool {
	return slices.ContainsFunc(args, func(a specs.LinuxSeccompArg) bool { return a.Index == index })
}

// hasVsockDeny reports the rule denyVsock adds, so that it is added once.
func hasVsockDeny(rules []specs.LinuxSyscall) bool {
	return slices.ContainsFunc(rules, func(r specs.LinuxSyscall) bool {
		return r.Action == specs.ActErrno && slices.Equal(r.Names, []string{"socket"}) && len(r.Args) == 1 &&
			r.Args[0] == specs.LinuxSeccompArg{Index: 0, Value: unix.AF_VSOCK, Op: specs.OpEqualTo}
	})
}
