package container

import (
	"syscall"
	"testing"
)

func TestExitStatus(t *testing.T) {
	// Raw wait statuses as wait4 returns them.
	cases := []struct {
		name string
		ws   syscall.WaitStatus
		want uint32
	}{
		{name: "exit 0", ws: 0, want: 0},
		{name: "exit 7", ws: 7 << 8, want: 7},
		{name: "exit 255", ws: 255 << 8, want: 255},
		{name: "killed by SIGKILL", ws: syscall.WaitStatus(syscall.SIGKILL), want: 137},
		{name: "killed by SIGTERM", ws: syscall.WaitStatus(syscall.SIGTERM), want: 143},
		{name: "killed by SIGSEGV with core", ws: syscall.WaitStatus(syscall.SIGSEGV) | 0x80, want: 139},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ExitStatus(tc.ws); got != tc.want {
				t.Fatalf("ExitStatus(%#x) = %d, want %d", uint32(tc.ws), got, tc.want)
			}
		})
	}
}

func TestStateExitStatusNil(t *testing.T) {
	if got := stateExitStatus(nil); got != 255 {
		t.Fatalf("nil state = %d, want 255", got)
	}
}

func TestParseFlatKeyedOOMKills(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     uint64
	}{
		{"none", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n", 0},
		{"killed", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\noom_group_kill 0\n", 2},
		{"missing", "low 0\n", 0},
		{"empty", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ParseFlatKeyed(tc.in)["oom_kill"]; got != tc.want {
				t.Fatalf("oom_kill = %d, want %d", got, tc.want)
			}
		})
	}
}
