package api

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestValidateID(t *testing.T) {
	cases := []struct {
		name, id string
		ok       bool
	}{
		{name: "cri id", id: strings.Repeat("ab12", 16), ok: true},
		{name: "ctr name", id: "demo-1.test_2", ok: true},
		{name: "containerd maximum", id: strings.Repeat("a", 76), ok: true},
		{name: "empty", id: ""},
		{name: "too long", id: strings.Repeat("a", 77)},
		{name: "dot", id: "."},
		{name: "dot dot", id: ".."},
		{name: "slash", id: "a/b"},
		{name: "leading separator", id: "-a"},
		{name: "NUL", id: "a\x00b"},
		{name: "space", id: "a b"},
		{name: "dash option", id: "--version"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateID("container id", tc.id)
			if tc.ok != (err == nil) {
				t.Fatalf("ValidateID(%q) = %v, want ok=%v", tc.id, err, tc.ok)
			}
			if err != nil && (!errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "container id")) {
				t.Fatalf("error %q: want InvalidArgument naming the id's kind", err)
			}
		})
	}
}
