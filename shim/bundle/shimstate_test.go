package bundle

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestShimLiveness(t *testing.T) {
	withBootstrap := t.TempDir()
	if err := os.WriteFile(filepath.Join(withBootstrap, bootstrapFile), []byte(`{"version":3,"address":"unix:///run/containerd/s/abc","protocol":"ttrpc"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	addrCases := []struct {
		name, bundle, want string
	}{
		{name: "recorded", bundle: withBootstrap, want: "unix:///run/containerd/s/abc"},
		{name: "none", bundle: t.TempDir()},
	}
	for _, tc := range addrCases {
		t.Run("address/"+tc.name, func(t *testing.T) {
			if got := ShimAddress(tc.bundle); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	pidCases := []struct {
		name string
		pid  int
		want bool
	}{
		{name: "no pid", pid: 0},
		{name: "not a shim (the test binary)", pid: os.Getpid()},
		{name: "gone", pid: 1 << 30},
	}
	for _, tc := range pidCases {
		t.Run("pid/"+tc.name, func(t *testing.T) {
			if got := IsShimProcess(tc.pid, 0); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseStatStartTime(t *testing.T) {
	fields := func(comm string) string {
		// pid (comm) state, then fields 4..21, then starttime (22), then more.
		return "42 (" + comm + ") S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 987654 19 20"
	}
	cases := []struct {
		name, stat string
		want       uint64
		wantErr    bool
	}{
		{name: "plain", stat: fields("containerd-shim"), want: 987654},
		{name: "comm with spaces and parens", stat: fields("a) (b c"), want: 987654},
		{name: "truncated", stat: "42 (x) S 1 2", wantErr: true},
		{name: "no comm", stat: "garbage", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatStartTime(tc.stat)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("got %d, %v; want %d (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestSameProcess(t *testing.T) {
	self, err := ProcessStartTime(syscall.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		pid   int
		start uint64
		want  bool
	}{
		{name: "same", pid: syscall.Getpid(), start: self, want: true},
		{name: "pid reused", pid: syscall.Getpid(), start: self + 1},
		{name: "gone", pid: 1 << 30, start: self},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := sameProcess(tc.pid, tc.start); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}
