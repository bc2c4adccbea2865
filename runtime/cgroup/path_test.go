package cgroup

import (
	"strings"
	"testing"
)

func TestPath(t *testing.T) {
	for _, tc := range []struct {
		name        string
		cgroupsPath string
		cri         bool
		parent, id  string
		want        string
		wantErr     string // substring of the error; "" for none
	}{
		{
			name:        "cgroupfs path under CRI",
			cgroupsPath: "/kubepods/burstable/pod1234/abcd",
			cri:         true, parent: "/veil", id: "abcd",
			want: "/kubepods/burstable/pod1234/abcd",
		},
		{
			name:        "systemd form under CRI",
			cgroupsPath: "kubepods-burstable-pod123.slice:cri-containerd:abcd",
			cri:         true, parent: "/veil", id: "abcd",
			want: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod123.slice/cri-containerd-abcd.scope",
		},
		{
			name:        "systemd form, besteffort pod",
			cgroupsPath: "kubepods-besteffort-podx.slice:cri-containerd:id1",
			cri:         true,
			want:        "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podx.slice/cri-containerd-id1.scope",
		},
		{
			name:        "systemd form, empty slice is system.slice (as runc)",
			cgroupsPath: ":veil:abcd",
			cri:         true,
			want:        "/system.slice/veil-abcd.scope",
		},
		{
			name:        "systemd form, root slice",
			cgroupsPath: "-.slice:veil:abcd",
			cri:         true,
			want:        "/veil-abcd.scope",
		},
		{
			name:        "systemd form naming a slice",
			cgroupsPath: "machine.slice::sandbox.slice",
			cri:         true,
			want:        "/machine.slice/sandbox.slice",
		},
		{
			name:   "no CRI",
			parent: "/veil", id: "abcd",
			want: "/veil/abcd",
		},
		{
			name:        "no CRI ignores cgroupsPath",
			cgroupsPath: "/default/abcd",
			parent:      "/veil/default", id: "abcd",
			want: "/veil/default/abcd",
		},
		{
			name: "CRI with empty cgroupsPath falls back to parent",
			cri:  true, parent: "/veil", id: "abcd",
			want: "/veil/abcd",
		},
		{
			name:        "dotdot cgroupfs path",
			cgroupsPath: "/kubepods/../x",
			cri:         true,
			wantErr:     `"/kubepods/../x" contains ".."`,
		},
		{
			name:        "dotdot relative",
			cgroupsPath: "../x",
			cri:         true,
			wantErr:     `cgroupsPath "../x" is relative`,
		},
		{
			name:        "relative",
			cgroupsPath: "relative",
			cri:         true,
			wantErr:     `cgroupsPath "relative" is relative`,
		},
		{
			name:        "unclean",
			cgroupsPath: "/kubepods//pod1/",
			cri:         true,
			wantErr:     `"/kubepods//pod1/" is not clean`,
		},
		{
			name:        "root cgroup",
			cgroupsPath: "/",
			cri:         true,
			wantErr:     "root cgroup",
		},
		{
			name:        "malformed systemd form, two fields",
			cgroupsPath: "a:b",
			cri:         true,
			wantErr:     `cgroupsPath "a:b": the systemd form is slice:prefix:name (3 fields), got 2`,
		},
		{
			name:        "malformed systemd form, four fields",
			cgroupsPath: "a.slice:b:c:d",
			cri:         true,
			wantErr:     "(3 fields), got 4",
		},
		{
			name:        "systemd form, slice without .slice",
			cgroupsPath: "kubepods:cri-containerd:abcd",
			cri:         true,
			wantErr:     "invalid slice name: kubepods",
		},
		{
			name:        "systemd form, bad slice",
			cgroupsPath: "kubepods--x.slice:cri-containerd:abcd",
			cri:         true,
			wantErr:     "invalid slice name",
		},
		{
			name:        "systemd form, empty name",
			cgroupsPath: "kubepods.slice:cri-containerd:",
			cri:         true,
			wantErr:     "empty name",
		},
		{
			name:        "systemd form, slash in name",
			cgroupsPath: "kubepods.slice:cri-containerd:../../x",
			cri:         true,
			wantErr:     "cannot contain /",
		},
		{
			name:        "systemd form, dotdot in slice",
			cgroupsPath: "../kubepods.slice:cri-containerd:abcd",
			cri:         true,
			wantErr:     "invalid slice name",
		},
		{
			name:   "no CRI, relative parent",
			parent: "veil", id: "abcd",
			wantErr: `cgroup parent "veil", sandbox id "abcd": cgroup path "veil/abcd" is relative`,
		},
		{
			name:   "no CRI, empty parent",
			parent: "", id: "abcd",
			wantErr: "sandbox abcd: no cgroup parent given",
		},
		{
			name:   "no CRI, root parent",
			parent: "/", id: "abcd",
			wantErr: `"//abcd" is not clean`,
		},
		{
			name:   "no CRI, unclean parent",
			parent: "/veil/", id: "abcd",
			wantErr: `"/veil//abcd" is not clean`,
		},
		{
			name:   "no CRI, dotdot id",
			parent: "/veil", id: "..",
			wantErr: `contains ".."`,
		},
		{
			name:   "no CRI, id with slash",
			parent: "/veil", id: "a/b",
			wantErr: `sandbox id "a/b" is not a single cgroup name`,
		},
		{
			name:    "no CRI, empty id",
			parent:  "/veil",
			wantErr: `sandbox id "" is not a single cgroup name`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Path(tc.cgroupsPath, tc.cri, tc.parent, tc.id)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Path(%q, %v, %q, %q) = %q, %v; want an error containing %q",
						tc.cgroupsPath, tc.cri, tc.parent, tc.id, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Path(%q, %v, %q, %q) = %q, %v; want %q",
					tc.cgroupsPath, tc.cri, tc.parent, tc.id, got, err, tc.want)
			}
		})
	}
}
