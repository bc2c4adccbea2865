package jail

import (
	"strings"
	"testing"
)

func TestSpecValidate(t *testing.T) {
	cases := []struct {
		name    string
		spec    Spec
		wantErr string
	}{
		{name: "zero", spec: Spec{}},
		{name: "jailed", spec: Spec{UID: 5, GID: 5, Namespaces: true, Binds: []Bind{{Source: "/k", Target: "/vm/kernel"}}, Devices: []string{"/dev/kvm"}}},
		{name: "uid without gid", spec: Spec{UID: 5}, wantErr: "both or neither"},
		{name: "root gid with uid", spec: Spec{GID: 5}, wantErr: "both or neither"},
		{name: "relative bind", spec: Spec{Namespaces: true, Binds: []Bind{{Source: "k", Target: "/vm/k"}}}, wantErr: "clean absolute"},
		{name: "unclean target", spec: Spec{Namespaces: true, Binds: []Bind{{Source: "/k", Target: "/vm/../etc"}}}, wantErr: "clean absolute"},
		{name: "bind over /usr", spec: Spec{Namespaces: true, Binds: []Bind{{Source: "/k", Target: "/usr/bin/x"}}}, wantErr: "reserved"},
		{name: "bind over the root", spec: Spec{Namespaces: true, Binds: []Bind{{Source: "/k", Target: "/"}}}, wantErr: "reserved"},
		{name: "device outside /dev", spec: Spec{Namespaces: true, Devices: []string{"/etc/shadow"}}, wantErr: "not below /dev"},
		{name: "binds without namespaces", spec: Spec{Binds: []Bind{{Source: "/k", Target: "/vm/k"}}}, wantErr: "need namespaces"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.spec.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate() = %v, want %q", err, tc.wantErr)
			}
		})
	}
}
