package hostcheck

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/jail"
	"github.com/veil-runtime/veil/test/integration"
)

// TestMain lets the test binary serve as the jail stage (TryJail).
func TestMain(m *testing.M) { integration.Main(m) }

func TestTryJailForReal(t *testing.T) {
	integration.Require(t, integration.Root)
	cfg := config.Default()
	cases := []struct {
		name string
		spec *jail.Spec
		want string // substring of the error; "" for success
	}{
		{name: "the check's jail runs", spec: jailProbeSpec(cfg.Jail)},
		{name: "a stage failure is reported", spec: func() *jail.Spec {
			s := jailProbeSpec(cfg.Jail)
			s.Binds = []jail.Bind{{Source: "/nonexistent/veil-check", Target: "/x"}}
			return s
		}(), want: "veil-jail: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := TryJail(context.Background(), tc.spec)
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one with %q", err, tc.want)
			}
			t.Logf("%v", err)
		})
	}
}

func TestRunLocalHost(t *testing.T) {
	integration.Require(t, integration.Root)
	cfg, err := config.Load(integration.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	rep := Run(context.Background(), cfg, LocalHost(), Options{})
	for _, r := range rep.Results {
		t.Logf("%-4s %-30s %s", r.Status, r.Name, r.Detail)
		switch r.Name {
		case nameJail, nameCgroupControllers:
			if r.Status != OK {
				t.Errorf("%s: %s %s", r.Name, r.Status, r.Detail)
			}
		case nameSeccomp:
			if r.Status != OK || rep.Hypervisor == config.HypervisorQEMU && !strings.Contains(r.Detail, "starts with -sandbox") {
				t.Errorf("%s: %s %s", r.Name, r.Status, r.Detail)
			}
		}
	}
}

func TestProbeQEMUSandbox(t *testing.T) {
	dir := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name string
		path string
		want string // substring of the error; "" for success
	}{
		{name: "answers and quits", path: script("ok", `cat >/dev/null; exit 0`)},
		{name: "built without libseccomp", path: script("noseccomp", "echo \"$0: -sandbox $2: -sandbox is not supported by this QEMU binary\" >&2; exit 1\n"),
			want: "-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny: -sandbox is not supported by this QEMU binary (exit status 1)"},
		{name: "silent failure", path: script("silent", "exit 3\n"), want: "-sandbox on,obsolete=deny"},
		{name: "not there", path: filepath.Join(dir, "none"), want: "no such file"},
	}
	if qemu, err := exec.LookPath("qemu-system-x86_64"); err == nil {
		cases = append(cases, struct{ name, path, want string }{name: "this host's QEMU", path: qemu})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := ProbeQEMUSandbox(context.Background(), tc.path)
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one with %q", err, tc.want)
			}
		})
	}
}

func TestTryJailSkipsWithoutRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("runs as root")
	}
	var skip *SkipError
	if err := TryJail(context.Background(), jailProbeSpec(config.Default().Jail)); !errors.As(err, &skip) {
		t.Fatalf("%v, want a SkipError", err)
	}
}
