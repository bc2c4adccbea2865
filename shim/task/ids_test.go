package task

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestValidateID(t *testing.T) {
	cases := []struct {
		name, id string
		ok       bool
	}{
		{name: "plain", id: "c1", ok: true},
		{name: "cri sandbox id", id: strings.Repeat("ab", 32), ok: true},
		{name: "containerd's rule: one separator at a time", id: "a..b"},
		{name: "separators inside", id: "a.b-c_d", ok: true},
		{name: "empty", id: ""},
		{name: "dot", id: "."},
		{name: "dot-dot", id: ".."},
		{name: "slash", id: "a/b"},
		{name: "nul", id: "a\x00b"},
		{name: "too long", id: strings.Repeat("x", 77)},
		{name: "longest", id: strings.Repeat("x", 76), ok: true},
		{name: "option-like", id: "--version"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := validateID("container id", tc.id)
			if (err == nil) != tc.ok {
				t.Fatalf("validateID(%q) = %v", tc.id, err)
			}
			if err != nil && (status.Code(toService(err)) != codes.InvalidArgument || !strings.Contains(err.Error(), "container id")) {
				t.Fatalf("error %v is not an InvalidArgument naming the id", err)
			}
		})
	}
}
