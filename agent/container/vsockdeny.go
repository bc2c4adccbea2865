package container

import (
	"math"
	"math/bits"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The kernel reads socket's family as an int: only the low 32 bits of the
// register count, so socket(1<<32|AF_VSOCK, ...) is an AF_VSOCK socket
// too. The denial therefore compares the low 32 bits (SCMP_CMP_MASKED_EQ
// with mask 0xffffffff), not the whole argument as SCMP_CMP_EQ would.
//
// Permissive socket rules keep only families below familyEnd: Linux's end
// at AF_MAX (46 in 6.1) and socket fails with EAFNOSUPPORT for any larger
// value, so this only hands invalid values to the default action, and it
// keeps the narrowed rules few.
const (
	low32     = math.MaxUint32
	familyEnd = 256
)

// vsockDeny is the rule denyVsock adds: socket(family) whose low 32 bits
// are AF_VSOCK fails with EPERM. For SCMP_CMP_MASKED_EQ, value is the mask
// and valueTwo the datum.
func vsockDeny() specs.LinuxSyscall {
	eperm := uint(unix.EPERM)
	return specs.LinuxSyscall{
		Names:    []string{"socket"},
		Action:   specs.ActErrno,
		ErrnoRet: &eperm,
		Args:     []specs.LinuxSeccompArg{{Index: 0, Value: low32, ValueTwo: unix.AF_VSOCK, Op: specs.OpMaskedEqual}},
	}
}

// denyVsock makes the spec's seccomp profile refuse socket(AF_VSOCK, ...)
// with EPERM, whatever the profile allows otherwise: AF_VSOCK is not
// namespaced in the guest kernel, and a container has no business with
// the host's vsock ports. An Unconfined container (no profile, or an
// empty one, which runc ignores) gets a profile that allows everything
// else.
//
// Adding the denial is not enough when the profile has a permissive rule
// (allow, log, trace, notify) for socket that also matches AF_VSOCK:
// libseccomp lets an unconditional rule of a syscall replace all its
// conditional ones, resolves overlapping conditional rules by its own
// ordering, and runc drops a rule whose action equals the default one
// (so under a default of errno EPERM the denial is not even loaded). So
// every permissive socket rule is narrowed to the families below
// familyEnd other than AF_VSOCK (see narrowFamily), which no other rule
// then contradicts; it is dropped when the profile's default action is the
// same, since runc skips it anyway. Rules that deny or kill are left
// alone: whichever of them wins, socket(AF_VSOCK) fails.
//
// The result is a fixed point: a second pass changes nothing.
func denyVsock(l *specs.Linux) {
	if sc := l.Seccomp; sc == nil || sc.DefaultAction == "" && len(sc.Syscalls) == 0 {
		// The ABIs containerd's profiles list. For x86 (i386) libseccomp
		// also denies socketcall(SYS_SOCKET), whose family it cannot see:
		// moot, as the guest kernel runs no i386 code.
		l.Seccomp = &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		}
	}
	sc := l.Seccomp
	var out []specs.LinuxSyscall
	for _, r := range sc.Syscalls {
		if !permissive(r.Action) || !slices.Contains(r.Names, "socket") {
			out = append(out, r)
			continue
		}
		if rest := slices.DeleteFunc(slices.Clone(r.Names), func(n string) bool { return n == "socket" }); len(rest) > 0 {
			other := r
			other.Names = rest
			out = append(out, other)
		}
		if isDefault(r, sc) {
			continue
		}
		for _, conj := range conjunctions(r.Args) {
			a0, others := splitArg0(conj)
			narrowed, keep := narrowFamily(a0)
			if keep {
				only := r
				only.Names = []string{"socket"}
				only.Args = conj
				out = append(out, only)
				continue
			}
			for _, c := range narrowed {
				only := r
				only.Names = []string{"socket"}
				only.Args = append(slices.Clone(others), c)
				out = append(out, only)
			}
		}
	}
	if !slices.ContainsFunc(out, isVsockDeny) {
		out = append(out, vsockDeny())
	}
	sc.Syscalls = out
	// libseccomp turns a socket rule for the x86 (i386) ABI into one for
	// socketcall(SYS_SOCKET), which cannot see the family: there a
	// permissive socket rule and the denial collide (EEXIST, and the
	// container would not start). The guest kernel runs no i386 code
	// (CONFIG_IA32_EMULATION is off), so such a profile loses the x86
	// ABI: a syscall of it would meet libseccomp's bad-architecture action
	// (kill) instead.
	if slices.Contains(sc.Architectures, specs.ArchX86) && !isDefault(vsockDeny(), sc) &&
		slices.ContainsFunc(out, func(r specs.LinuxSyscall) bool {
			return permissive(r.Action) && slices.Contains(r.Names, "socket") && !isDefault(r, sc)
		}) {
		sc.Architectures = slices.DeleteFunc(slices.Clone(sc.Architectures), func(a specs.Arch) bool { return a == specs.ArchX86 })
	}
}

// permissive reports an action that can let the syscall run.
func permissive(a specs.LinuxSeccompAction) bool {
	switch a {
	case specs.ActAllow, specs.ActLog, specs.ActTrace, specs.ActNotify:
		return true
	}
	return false
}

// isDefault reports a rule runc skips because its action is the profile's
// default one.
func isDefault(r specs.LinuxSyscall, sc *specs.LinuxSeccomp) bool {
	if r.Action != sc.DefaultAction {
		return false
	}
	if r.Action != specs.ActErrno && r.Action != specs.ActTrace {
		return true
	}
	errno := func(p *uint) uint {
		if p == nil {
			return uint(unix.EPERM) // runc's default return code
		}
		return *p
	}
	return errno(r.ErrnoRet) == errno(sc.DefaultErrnoRet)
}

// conjunctions are the argument conditions of a rule as runc adds them to
// libseccomp: all together (each must hold), unless two name the same
// argument; then each condition is a rule of its own (any may hold).
func conjunctions(args []specs.LinuxSeccompArg) [][]specs.LinuxSeccompArg {
	seen := map[uint]bool{}
	for _, a := range args {
		if seen[a.Index] {
			out := make([][]specs.LinuxSeccompArg, len(args))
			for i, a := range args {
				out[i] = []specs.LinuxSeccompArg{a}
			}
			return out
		}
		seen[a.Index] = true
	}
	return [][]specs.LinuxSeccompArg{args}
}

// splitArg0 returns a conjunction's condition on argument 0 (the family),
// if any, and the others.
func splitArg0(conj []specs.LinuxSeccompArg) (*specs.LinuxSeccompArg, []specs.LinuxSeccompArg) {
	var others []specs.LinuxSeccompArg
	var a0 *specs.LinuxSeccompArg
	for i := range conj {
		if conj[i].Index == 0 {
			a0 = &conj[i]
		} else {
			others = append(others, conj[i])
		}
	}
	return a0, others
}

// A span is the inclusive range of family values [lo, hi].
type span struct{ lo, hi uint64 }

// allowedSpans are the families a permissive socket rule may keep: below
// familyEnd and not AF_VSOCK.
var allowedSpans = []span{{0, unix.AF_VSOCK - 1}, {unix.AF_VSOCK + 1, familyEnd - 1}}

// narrowFamily takes a permissive socket rule's condition on the family
// (nil: none) and returns keep when it cannot match AF_VSOCK in the low 32
// bits; otherwise it returns single conditions whose union is what the
// condition matches of allowedSpans (none: the rule goes).
func narrowFamily(c *specs.LinuxSeccompArg) (narrowed []specs.LinuxSeccompArg, keep bool) {
	if c == nil {
		return spanArgs(allowedSpans), false
	}
	if c.Op == specs.OpMaskedEqual {
		return narrowMasked(c.Value, c.ValueTwo)
	}
	s, ok := spans(c.Op, c.Value)
	if !ok {
		return nil, true // an operator runc refuses anyway
	}
	if !slices.ContainsFunc(s, matchesVsock) {
		return nil, true
	}
	var in []span
	for _, a := range s {
		for _, b := range allowedSpans {
			if lo, hi := max(a.lo, b.lo), min(a.hi, b.hi); lo <= hi {
				in = append(in, span{lo, hi})
			}
		}
	}
	return spanArgs(in), false
}

// spans is the set of values a comparison matches (libseccomp compares all
// 64 bits, unsigned).
func spans(op specs.LinuxSeccompOperator, v uint64) ([]span, bool) {
	var s []span
	switch op {
	case specs.OpEqualTo:
		s = []span{{v, v}}
	case specs.OpNotEqual:
		if v > 0 {
			s = append(s, span{0, v - 1})
		}
		if v < math.MaxUint64 {
			s = append(s, span{v + 1, math.MaxUint64})
		}
	case specs.OpLessThan:
		if v > 0 {
			s = []span{{0, v - 1}}
		}
	case specs.OpLessEqual:
		s = []span{{0, v}}
	case specs.OpGreaterThan:
		if v < math.MaxUint64 {
			s = []span{{v + 1, math.MaxUint64}}
		}
	case specs.OpGreaterEqual:
		s = []span{{v, math.MaxUint64}}
	default:
		return nil, false
	}
	return s, true
}

// matchesVsock reports whether a span holds a value whose low 32 bits are
// AF_VSOCK.
func matchesVsock(s span) bool {
	first := s.lo&^low32 | unix.AF_VSOCK
	if first < s.lo {
		if s.lo&^low32 == math.MaxUint64&^low32 {
			return false // no later block of 2^32
		}
		first += 1 << 32
	}
	return first <= s.hi
}

// spanArgs turns spans below familyEnd into single conditions: [0, hi] is
// "<= hi", a single value "==", anything else aligned power-of-two blocks
// as masked compares (whose masks cover all 64 bits above the block).
func spanArgs(ss []span) []specs.LinuxSeccompArg {
	var out []specs.LinuxSeccompArg
	for _, s := range ss {
		switch s.lo {
		case 0:
			out = append(out, specs.LinuxSeccompArg{Index: 0, Value: s.hi, Op: specs.OpLessEqual})
		case s.hi:
			out = append(out, specs.LinuxSeccompArg{Index: 0, Value: s.lo, Op: specs.OpEqualTo})
		default:
			for lo := s.lo; lo <= s.hi; {
				// The largest block aligned at lo that fits in the span.
				size := uint64(1) << bits.TrailingZeros64(lo)
				for size > s.hi-lo+1 {
					size >>= 1
				}
				if size == 1 {
					out = append(out, specs.LinuxSeccompArg{Index: 0, Value: lo, Op: specs.OpEqualTo})
				} else {
					out = append(out, specs.LinuxSeccompArg{Index: 0, Value: ^(size - 1), ValueTwo: lo, Op: specs.OpMaskedEqual})
				}
				lo += size
			}
		}
	}
	return out
}

// narrowMasked is narrowFamily for "family & mask == datum": it keeps the
// condition unless a low-32-bit AF_VSOCK can match; otherwise it requires
// the bits from familyEnd up be 0 and, one condition for each bit below
// that the mask leaves free, that bit differ from AF_VSOCK's.
func narrowMasked(mask, datum uint64) ([]specs.LinuxSeccompArg, bool) {
	if datum&^mask != 0 || datum&mask&low32 != unix.AF_VSOCK&mask&low32 {
		return nil, true // matches nothing, or never AF_VSOCK
	}
	const above = ^uint64(familyEnd - 1)
	if datum&above != 0 {
		return nil, false // only families from familyEnd up: drop
	}
	var out []specs.LinuxSeccompArg
	for bit := uint64(1); bit < familyEnd; bit <<= 1 {
		if mask&bit == 0 {
			out = append(out, specs.LinuxSeccompArg{Index: 0, Value: mask | above | bit, ValueTwo: datum | bit&^unix.AF_VSOCK, Op: specs.OpMaskedEqual})
		}
	}
	return out, false
}

// isVsockDeny reports the rule denyVsock adds, so that it is added once.
func isVsockDeny(r specs.LinuxSyscall) bool {
	d := vsockDeny()
	return r.Action == d.Action && r.ErrnoRet != nil && *r.ErrnoRet == *d.ErrnoRet &&
		slices.Equal(r.Names, d.Names) && slices.Equal(r.Args, d.Args)
}
