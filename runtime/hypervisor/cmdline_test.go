package hypervisor

import (
	"strings"
	"testing"
)

func TestCmdline(t *testing.T) {
	cases := []struct {
		name   string
		khz    uint64
		extra  string
		want   string
		absent string
	}{
		{name: "with tsc and params", khz: 2596146, extra: " debug ", want: baseCmdline + " tsc_early_khz=2596146 debug"},
		{name: "unknown tsc", khz: 0, want: baseCmdline, absent: "tsc_early_khz"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Cmdline(tc.khz, tc.extra)
			if got != tc.want {
				t.Fatalf("Cmdline = %q, want %q", got, tc.want)
			}
			if tc.absent != "" && strings.Contains(got, tc.absent) {
				t.Fatalf("Cmdline %q contains %q", got, tc.absent)
			}
		})
	}
}

func TestParseTSCKHz(t *testing.T) {
	cases := []struct {
		name    string
		cpuinfo string
		want    uint64
		wantErr bool
	}{
		{name: "first cpu", cpuinfo: "processor\t: 0\ncpu MHz\t\t: 2596.146\n\nprocessor\t: 1\ncpu MHz\t\t: 1200.000\n", want: 2596146},
		{name: "rounding", cpuinfo: "cpu MHz : 2445.4124\n", want: 2445412},
		{name: "missing", cpuinfo: "processor : 0\nflags : fpu\n", wantErr: true},
		{name: "garbage", cpuinfo: "cpu MHz : fast\n", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseTSCKHz([]byte(tc.cpuinfo))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Fatalf("got %d, want %d", got, tc.want)
			}
		})
	}
}
