package task

import (
	"testing"

	"github.com/veil-runtime/veil/agent/api"
)

func TestWantStdio(t *testing.T) {
	cases := []struct {
		name  string
		paths stdioPaths
		want  *api.Stdio
	}{
		{name: "none", want: &api.Stdio{}},
		{name: "all three", paths: stdioPaths{Stdin: "i", Stdout: "o", Stderr: "e"}, want: &api.Stdio{Stdin: true, Stdout: true, Stderr: true}},
		{name: "output only", paths: stdioPaths{Stdout: "o", Stderr: "e"}, want: &api.Stdio{Stdout: true, Stderr: true}},
		{name: "terminal drops stderr", paths: stdioPaths{Stdin: "i", Stdout: "o", Stderr: "e", Terminal: true}, want: &api.Stdio{Stdin: true, Stdout: true, Terminal: true}},
		{name: "stdout only", paths: stdioPaths{Stdout: "o"}, want: &api.Stdio{Stdout: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := wantStdio(tc.paths)
			if got.Stdin != tc.want.Stdin || got.Stdout != tc.want.Stdout || got.Stderr != tc.want.Stderr || got.Terminal != tc.want.Terminal {
				t.Fatalf("wantStdio(%+v) = %v, want %v", tc.paths, got, tc.want)
			}
		})
	}
}
