package container

import (
	"reflect"
	"slices"
	"testing"

	cdseccomp "github.com/containerd/containerd/v2/contrib/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Conditions on socket's family (argument 0) as the tests write them.
func famEQ(v uint64) specs.LinuxSeccompArg {
	return specs.LinuxSeccompArg{Index: 0, Value: v, Op: specs.OpEqualTo}
}

func famOp(op specs.LinuxSeccompOperator, v uint64) specs.LinuxSeccompArg {
	return specs.LinuxSeccompArg{Index: 0, Value: v, Op: op}
}

func famMasked(mask, datum uint64) specs.LinuxSeccompArg {
	return specs.LinuxSeccompArg{Index: 0, Value: mask, ValueTwo: datum, Op: specs.OpMaskedEqual}
}

// allowedFamilies is what an unconditional permissive socket rule becomes:
// the families below 256 but AF_VSOCK (40).
var allowedFamilies = []specs.LinuxSeccompArg{
	famOp(specs.OpLessEqual, 39), famEQ(41), famMasked(^uint64(1), 42), famMasked(^uint64(3), 44),
	famMasked(^uint64(15), 48), famMasked(^uint64(63), 64), famMasked(^uint64(127), 128),
}

// socketRules is one rule per family condition, with extra conditions
// (on other arguments) first.
func socketRules(act specs.LinuxSeccompAction, fams []specs.LinuxSeccompArg, extra ...specs.LinuxSeccompArg) []specs.LinuxSyscall {
	var out []specs.LinuxSyscall
	for _, f := range fams {
		out = append(out, specs.LinuxSyscall{Names: []string{"socket"}, Action: act, Args: append(slices.Clone(extra), f)})
	}
	return out
}

func rules(rs ...any) []specs.LinuxSyscall {
	var out []specs.LinuxSyscall
	for _, r := range rs {
		switch r := r.(type) {
		case specs.LinuxSyscall:
			out = append(out, r)
		case []specs.LinuxSyscall:
			out = append(out, r...)
		}
	}
	return out
}

// runtimeDefaultProfile is containerd's RuntimeDefault profile for a
// container without capabilities.
func runtimeDefaultProfile() *specs.LinuxSeccomp {
	return cdseccomp.DefaultProfile(&specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{}}})
}

func TestDenyVsock(t *testing.T) {
	eacces, enosys := uint(unix.EACCES), uint(unix.ENOSYS)
	deny := vsockDeny()
	arch := []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}
	stream := specs.LinuxSeccompArg{Index: 1, Value: unix.SOCK_STREAM, Op: specs.OpEqualTo}
	rd := runtimeDefaultProfile()
	rdWant := runtimeDefaultProfile()
	rdWant.Syscalls = append(rdWant.Syscalls, deny)
	cases := []struct {
		name string
		in   *specs.LinuxSeccomp
		want *specs.LinuxSeccomp
	}{
		{
			name: "unconfined gets an allow-all profile with the denial",
			in:   nil,
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: arch, Syscalls: rules(deny)},
		},
		{
			name: "an empty profile, which runc ignores, is unconfined",
			in:   &specs.LinuxSeccomp{},
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: arch, Syscalls: rules(deny)},
		},
		{
			name: "default-allow profile without socket rules",
			in: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: rules(
				specs.LinuxSyscall{Names: []string{"mkdir"}, Action: specs.ActErrno})},
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: rules(
				specs.LinuxSyscall{Names: []string{"mkdir"}, Action: specs.ActErrno}, deny)},
		},
		{
			name: "default-errno profile keeps its rules",
			in: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: rules(
				specs.LinuxSyscall{Names: []string{"read", "write"}, Action: specs.ActAllow})},
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: rules(
				specs.LinuxSyscall{Names: []string{"read", "write"}, Action: specs.ActAllow}, deny)},
		},
		{
			name: "unconditional socket allow is split out and narrowed",
			in: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: rules(
				specs.LinuxSyscall{Names: []string{"read", "socket", "write"}, Action: specs.ActAllow})},
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: rules(
				specs.LinuxSyscall{Names: []string{"read", "write"}, Action: specs.ActAllow},
				socketRules(specs.ActAllow, allowedFamilies), deny)},
		},
		{
			name: "socket logged with a condition on its type only",
			in: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: rules(
				specs.LinuxSyscall{Names: []string{"socket"}, Action: specs.ActLog, Args: []specs.LinuxSeccompArg{stream}})},
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: rules(
				socketRules(specs.ActLog, allowedFamilies, stream), deny)},
		},
		{
			name: "socket allowed for other families (as containerd's default) is kept",
			in: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: rules(
				socketRules(specs.ActAllow, []specs.LinuxSeccompArg{famOp(specs.OpLessThan, 38), famEQ(39), famEQ(41)}))},
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: rules(
				socketRules(specs.ActAllow, []specs.LinuxSeccompArg{famOp(specs.OpLessThan, 38), famEQ(39), famEQ(41)}), deny)},
		},
		{
			name: "containerd's RuntimeDefault profile only gains the denial",
			in:   rd,
			want: rdWant,
		},
		{
			name: "family != AF_VSOCK still lets 1<<32|AF_VSOCK through: narrowed",
			in: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: rules(
				socketRules(specs.ActLog, []specs.LinuxSeccompArg{famOp(specs.OpNotEqual, 40)}))},
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: rules(
				socketRules(specs.ActLog, allowedFamilies), deny)},
		},
		{
			name: "a range over AF_VSOCK is cut around it",
			in: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: rules(
				socketRules(specs.ActAllow, []specs.LinuxSeccompArg{famOp(specs.OpLessThan, 46)}, stream))},
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: rules(
				socketRules(specs.ActAllow, []specs.LinuxSeccompArg{famOp(specs.OpLessEqual, 39), famEQ(41), famMasked(^uint64(1), 42), famMasked(^uint64(1), 44)}, stream), deny)},
		},
		{
			name: "socket allowed for AF_VSOCK only goes",
			in: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: rules(
				socketRules(specs.ActAllow, []specs.LinuxSeccompArg{famEQ(40)}))},
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: rules(deny)},
		},
		{
			name: "a masked compare that can match AF_VSOCK is narrowed bit by bit",
			in: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: rules(
				socketRules(specs.ActAllow, []specs.LinuxSeccompArg{famMasked(^uint64(3), 40)}))},
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: rules(
				socketRules(specs.ActAllow, []specs.LinuxSeccompArg{famMasked(^uint64(2), 41), famMasked(^uint64(1), 42)}), deny)},
		},
		{
			name: "a masked compare that cannot match AF_VSOCK is kept",
			in: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: rules(
				socketRules(specs.ActAllow, []specs.LinuxSeccompArg{famMasked(1, 1)}))},
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: rules(
				socketRules(specs.ActAllow, []specs.LinuxSeccompArg{famMasked(1, 1)}), deny)},
		},
		{
			name: "two family conditions, which runc ORs, become a rule each",
			in: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: rules(
				specs.LinuxSyscall{Names: []string{"socket"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{famEQ(1), famEQ(40)}})},
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: rules(
				socketRules(specs.ActAllow, []specs.LinuxSeccompArg{famEQ(1)}), deny)},
		},
		{
			name: "socket allowed like the default action is dropped, as runc would",
			in: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: rules(
				specs.LinuxSyscall{Names: []string{"socket"}, Action: specs.ActAllow})},
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: rules(deny)},
		},
		{
			name: "socket traced with a return code other than the default's is narrowed",
			in: &specs.LinuxSeccomp{DefaultAction: specs.ActTrace, DefaultErrnoRet: &enosys, Syscalls: rules(
				specs.LinuxSyscall{Names: []string{"socket"}, Action: specs.ActTrace})},
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActTrace, DefaultErrnoRet: &enosys, Syscalls: rules(
				socketRules(specs.ActTrace, allowedFamilies), deny)},
		},
		{
			name: "x86 goes where a permissive socket rule and the denial would collide on socketcall",
			in: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: arch, Syscalls: rules(
				specs.LinuxSyscall{Names: []string{"socket"}, Action: specs.ActLog})},
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX32}, Syscalls: rules(
				socketRules(specs.ActLog, allowedFamilies), deny)},
		},
		{
			name: "x86 stays where the denial is the default action",
			in: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Architectures: arch, Syscalls: rules(
				socketRules(specs.ActAllow, []specs.LinuxSeccompArg{famEQ(1)}))},
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Architectures: arch, Syscalls: rules(
				socketRules(specs.ActAllow, []specs.LinuxSeccompArg{famEQ(1)}), deny)},
		},
		{
			name: "a denial of socket is left alone",
			in: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: rules(
				specs.LinuxSyscall{Names: []string{"socket"}, Action: specs.ActErrno, ErrnoRet: &eacces})},
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: rules(
				specs.LinuxSyscall{Names: []string{"socket"}, Action: specs.ActErrno, ErrnoRet: &eacces}, deny)},
		},
		{
			name: "the denial is not added twice",
			in:   &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: rules(deny)},
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: rules(deny)},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var before []specs.LinuxSyscall
			if tc.in != nil {
				before = slices.Clone(tc.in.Syscalls)
			}
			l := &specs.Linux{Seccomp: tc.in}
			denyVsock(l)
			if !reflect.DeepEqual(l.Seccomp, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", l.Seccomp, tc.want)
			}
			checkFamilies(t, before, l.Seccomp)
			// Idempotent: a second pass changes nothing.
			again := &specs.Linux{Seccomp: l.Seccomp}
			denyVsock(again)
			if !reflect.DeepEqual(again.Seccomp, tc.want) {
				t.Fatalf("second pass: %+v", again.Seccomp)
			}
		})
	}
}

// checkFamilies models how runc loads socket rules: no permissive rule
// left may match a family whose low 32 bits are AF_VSOCK, and below 256
// every other family is matched by the same permissive actions as before.
func checkFamilies(t *testing.T, before []specs.LinuxSyscall, after *specs.LinuxSeccomp) {
	t.Helper()
	for _, f := range []uint64{40, 1<<32 | 40, 0xffffffff00000028, 0xffff_0000_0000_0028} {
		for _, r := range after.Syscalls {
			if permissive(r.Action) && slices.Contains(r.Names, "socket") && ruleMatches(r.Args, f) {
				t.Errorf("family %#x: permissive rule %+v matches", f, r)
			}
		}
	}
	// The profile's permissive socket actions as runc would load them.
	acts := func(rs []specs.LinuxSyscall, f uint64) []specs.LinuxSeccompAction {
		var out []specs.LinuxSeccompAction
		for _, r := range rs {
			if permissive(r.Action) && slices.Contains(r.Names, "socket") && !isDefault(r, after) && ruleMatches(r.Args, f) && !slices.Contains(out, r.Action) {
				out = append(out, r.Action)
			}
		}
		slices.Sort(out)
		return out
	}
	for f := range uint64(familyEnd) {
		if f == unix.AF_VSOCK {
			continue
		}
		if a, b := acts(before, f), acts(after.Syscalls, f); !slices.Equal(a, b) {
			t.Errorf("family %d: permissive actions %v, before %v", f, b, a)
		}
	}
}

// ruleMatches is whether a rule's conditions hold for socket(family, ...)
// with other arguments that satisfy them: all of them, unless two name the
// same argument, then any (as runc adds them).
func ruleMatches(args []specs.LinuxSeccompArg, family uint64) bool {
	for _, conj := range conjunctions(args) {
		ok := true
		for _, a := range conj {
			if a.Index == 0 && !condHolds(a, family) {
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func condHolds(a specs.LinuxSeccompArg, v uint64) bool {
	switch a.Op {
	case specs.OpEqualTo:
		return v == a.Value
	case specs.OpNotEqual:
		return v != a.Value
	case specs.OpLessThan:
		return v < a.Value
	case specs.OpLessEqual:
		return v <= a.Value
	case specs.OpGreaterThan:
		return v > a.Value
	case specs.OpGreaterEqual:
		return v >= a.Value
	case specs.OpMaskedEqual:
		return v&a.Value == a.ValueTwo
	}
	return false
}
