package container

import (
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestDenyVsock(t *testing.T) {
	eperm := uint(1)
	deny := specs.LinuxSyscall{Names: []string{"socket"}, Action: specs.ActErrno, ErrnoRet: &eperm,
		Args: []specs.LinuxSeccompArg{{Index: 0, Value: 40, Op: specs.OpEqualTo}}}
	notVsock := specs.LinuxSeccompArg{Index: 0, Value: 40, Op: specs.OpNotEqual}
	arch := []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}
	cases := []struct {
		name string
		in   *specs.LinuxSeccomp
		want *specs.LinuxSeccomp
	}{
		{
			name: "unconfined gets an allow-all profile with the denial",
			in:   nil,
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: arch, Syscalls: []specs.LinuxSyscall{deny}},
		},
		{
			name: "default-errno profile keeps its rules",
			in: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"read", "write"}, Action: specs.ActAllow}}},
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"read", "write"}, Action: specs.ActAllow}, deny}},
		},
		{
			name: "unconditional socket allow is split and conditioned",
			in: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"read", "socket", "write"}, Action: specs.ActAllow}}},
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"read", "write"}, Action: specs.ActAllow},
				{Names: []string{"socket"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{notVsock}},
				deny}},
		},
		{
			name: "socket alone under a log rule with another condition",
			in: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"socket"}, Action: specs.ActLog, Args: []specs.LinuxSeccompArg{{Index: 1, Value: 2, Op: specs.OpEqualTo}}}}},
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"socket"}, Action: specs.ActLog, Args: []specs.LinuxSeccompArg{{Index: 1, Value: 2, Op: specs.OpEqualTo}, notVsock}},
				deny}},
		},
		{
			name: "socket already conditioned on its family (containerd's default) is kept",
			in: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"socket"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 1, Op: specs.OpEqualTo}}}}},
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"socket"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 1, Op: specs.OpEqualTo}}},
				deny}},
		},
		{
			name: "a denial of socket is left alone",
			in: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"socket"}, Action: specs.ActErrno, ErrnoRet: &eperm}}},
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"socket"}, Action: specs.ActErrno, ErrnoRet: &eperm}, deny}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := &specs.Linux{Seccomp: tc.in}
			denyVsock(l)
			if !reflect.DeepEqual(l.Seccomp, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", l.Seccomp, tc.want)
			}
			// Idempotent: a second pass changes nothing.
			again := &specs.Linux{Seccomp: l.Seccomp}
			denyVsock(again)
			if !reflect.DeepEqual(again.Seccomp, tc.want) {
				t.Fatalf("second pass: %+v", again.Seccomp)
			}
		})
	}
}
