package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSelect(t *testing.T) {
	capable := HostFacts{CloudHypervisor: "/usr/bin/cloud-hypervisor", CPUVirt: true, KVM: true}
	cases := []struct {
		name       string
		configured string
		facts      HostFacts
		want       string
		wantReason []string
	}{
		{name: "qemu as configured", configured: "qemu", facts: capable, want: "qemu", wantReason: []string{`hypervisor.name is "qemu"`}},
		{name: "cloud-hypervisor as configured", configured: "cloud-hypervisor", facts: HostFacts{}, want: "cloud-hypervisor", wantReason: []string{`"cloud-hypervisor"`}},
		{name: "auto on a capable host", configured: "auto", facts: capable, want: "cloud-hypervisor", wantReason: []string{"/usr/bin/cloud-hypervisor found", "vmx/svm", "/dev/kvm exists"}},
		{name: "empty name is auto", configured: "", facts: capable, want: "cloud-hypervisor"},
		{
			name: "auto without the binary", configured: "auto",
			facts: HostFacts{CloudHypervisorErr: errors.New(`exec: "cloud-hypervisor": executable file not found in $PATH`), CPUVirt: true, KVM: true},
			want:  "qemu", wantReason: []string{"no cloud-hypervisor binary", "not found in $PATH"},
		},
		{
			name: "auto on PVM (kvm without vmx/svm)", configured: "auto",
			facts: HostFacts{CloudHypervisor: "/usr/bin/cloud-hypervisor", KVM: true},
			want:  "qemu", wantReason: []string{"no vmx/svm flag"},
		},
		{
			name: "auto without /dev/kvm", configured: "",
			facts: HostFacts{CloudHypervisor: "/usr/bin/cloud-hypervisor", CPUVirt: true},
			want:  "qemu", wantReason: []string{"no /dev/kvm"},
		},
		{
			name: "auto lists everything missing", configured: "auto", facts: HostFacts{},
			want: "qemu", wantReason: []string{"no cloud-hypervisor binary (not found)", "no vmx/svm flag", "no /dev/kvm"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name, reason := Hypervisor{Name: tc.configured}.Select(tc.facts)
			if name != tc.want {
				t.Errorf("name = %q (%s), want %q", name, reason, tc.want)
			}
			for _, w := range tc.wantReason {
				if !strings.Contains(reason, w) {
					t.Errorf("reason %q lacks %q", reason, w)
				}
			}
		})
	}
}

func TestHasCPUVirt(t *testing.T) {
	cases := []struct {
		name, cpuinfo string
		want          bool
	}{
		{name: "intel", cpuinfo: "processor\t: 0\nflags\t\t: fpu vme de vmx ssse3\n", want: true},
		{name: "amd", cpuinfo: "flags : fpu svm sse\n", want: true},
		{name: "pvm guest", cpuinfo: "processor : 0\nflags : fpu vme hypervisor lm\nvmx flags : ept\n"},
		{name: "flag as a substring only", cpuinfo: "flags : vmxon svmx\n"},
		{name: "empty", cpuinfo: ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := HasCPUVirt([]byte(tc.cpuinfo)); got != tc.want {
				t.Fatalf("HasCPUVirt = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestProbeHostBinary(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "ch")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, path string
		wantFound  bool
		wantErr    string
	}{
		{name: "configured executable", path: exe, wantFound: true},
		{name: "configured but missing", path: filepath.Join(dir, "nope"), wantErr: "no such file"},
		{name: "configured but not executable", path: plain, wantErr: "not an executable file"},
		{name: "directory", path: dir, wantErr: "not an executable file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := ProbeHost(tc.path)
			if (f.CloudHypervisor != "") != tc.wantFound {
				t.Fatalf("CloudHypervisor = %q (%v), want found=%v", f.CloudHypervisor, f.CloudHypervisorErr, tc.wantFound)
			}
			if tc.wantErr != "" && (f.CloudHypervisorErr == nil || !strings.Contains(f.CloudHypervisorErr.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", f.CloudHypervisorErr, tc.wantErr)
			}
		})
	}
}

// TestResolveMatchesHost: Resolve is Select over this machine's facts.
func TestResolveMatchesHost(t *testing.T) {
	h := Hypervisor{Name: HypervisorAuto}
	gotName, gotReason := h.Resolve()
	wantName, wantReason := h.Select(ProbeHost(""))
	if gotName != wantName || gotReason != wantReason {
		t.Fatalf("Resolve = %q (%s), Select(ProbeHost) = %q (%s)", gotName, gotReason, wantName, wantReason)
	}
	t.Logf("this host: %s (%s)", gotName, gotReason)
}
