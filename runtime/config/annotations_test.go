package config

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestApplyAnnotations(t *testing.T) {
	base := Default()
	base.Guest.KernelParams = "loglevel=4"
	cases := []struct {
		name        string
		annotations map[string]string
		wantErr     []string
		check       func(*testing.T, *Config)
	}{
		{
			name:        "none",
			annotations: nil,
			check: func(t *testing.T, c *Config) {
				if !reflect.DeepEqual(c, base) {
					t.Errorf("config changed: %+v", c)
				}
			},
		},
		{
			name:        "other prefixes are ignored",
			annotations: map[string]string{"io.kubernetes.cri.sandbox-id": "x", "io.containerd.veil.v2.group": "g", "io.veilx.foo": "1", "io.veil": "1"},
			check: func(t *testing.T, c *Config) {
				if !reflect.DeepEqual(c, base) {
					t.Errorf("config changed: %+v", c)
				}
			},
		},
		{
			name: "all allowed",
			annotations: map[string]string{
				AnnotationGuestVCPUs:        "2",
				AnnotationGuestMemoryMiB:    "512",
				AnnotationGuestKernelParams: " mitigations=off  nokaslr ",
				AnnotationVirtiofsCache:     "never",
				AnnotationAgentDial:         "90s",
			},
			check: func(t *testing.T, c *Config) {
				if c.Guest.VCPUs != 2 || c.Guest.MemoryMiB != 512 {
					t.Errorf("guest = %+v", c.Guest)
				}
				if c.Guest.KernelParams != "loglevel=4 mitigations=off  nokaslr" {
					t.Errorf("kernel_params = %q", c.Guest.KernelParams)
				}
				if c.Virtiofs.Cache != "never" || c.Timeouts.AgentDial.Duration != 90*time.Second {
					t.Errorf("cache %q, agent_dial %s", c.Virtiofs.Cache, c.Timeouts.AgentDial)
				}
				if c.Guest.Kernel != base.Guest.Kernel || c.StateDir != base.StateDir {
					t.Errorf("other keys changed: %+v", c)
				}
			},
		},
		{
			name:        "empty kernel_params leaves the configured ones",
			annotations: map[string]string{AnnotationGuestKernelParams: ""},
			check: func(t *testing.T, c *Config) {
				if c.Guest.KernelParams != "loglevel=4" {
					t.Errorf("kernel_params = %q", c.Guest.KernelParams)
				}
			},
		},
		{
			name:        "bounds are inclusive",
			annotations: map[string]string{AnnotationGuestVCPUs: "255", AnnotationGuestMemoryMiB: "64", AnnotationAgentDial: "10m"},
			check: func(t *testing.T, c *Config) {
				if c.Guest.VCPUs != 255 || c.Guest.MemoryMiB != 64 || c.Timeouts.AgentDial.Duration != 10*time.Minute {
					t.Errorf("config = %+v", c)
				}
			},
		},
		{
			name:        "unknown io.veil annotation names it and the allowed ones",
			annotations: map[string]string{"io.veil.config.guest.kernel": "/tmp/vmlinux"},
			wantErr:     []string{`invalid io.veil annotation: "io.veil.config.guest.kernel" is not allowed (allowed io.veil.* annotations: io.veil.config.guest.kernel_params, io.veil.config.guest.memory_mib, io.veil.config.guest.vcpus, io.veil.config.timeouts.agent_dial, io.veil.config.virtiofs.cache)`},
		},
		{
			name:        "io.veil outside io.veil.config is refused too",
			annotations: map[string]string{"io.veil.debug": "true"},
			wantErr:     []string{`"io.veil.debug" is not allowed`},
		},
		{
			name:        "every error is reported",
			annotations: map[string]string{"io.veil.a": "1", AnnotationGuestVCPUs: "0"},
			wantErr:     []string{`"io.veil.a" is not allowed (allowed`, `; io.veil.config.guest.vcpus="0": 0 is outside 1..255`},
		},
		{name: "vcpus not a number", annotations: map[string]string{AnnotationGuestVCPUs: "two"}, wantErr: []string{`io.veil.config.guest.vcpus="two": not a decimal integer in 1..255`}},
		{name: "vcpus negative", annotations: map[string]string{AnnotationGuestVCPUs: "-1"}, wantErr: []string{"not a decimal integer"}},
		{name: "vcpus too many", annotations: map[string]string{AnnotationGuestVCPUs: "256"}, wantErr: []string{"256 is outside 1..255"}},
		{name: "vcpus with spaces", annotations: map[string]string{AnnotationGuestVCPUs: " 2"}, wantErr: []string{"not a decimal integer"}},
		{name: "memory too small", annotations: map[string]string{AnnotationGuestMemoryMiB: "32"}, wantErr: []string{"32 is outside 64..1048576"}},
		{name: "memory with unit", annotations: map[string]string{AnnotationGuestMemoryMiB: "512Mi"}, wantErr: []string{"not a decimal integer"}},
		{name: "memory overflows uint32", annotations: map[string]string{AnnotationGuestMemoryMiB: "4294967296"}, wantErr: []string{"not a decimal integer"}},
		{name: "cache mode", annotations: map[string]string{AnnotationVirtiofsCache: "metadata"}, wantErr: []string{`unknown cache mode "metadata"`}},
		{name: "agent_dial not a duration", annotations: map[string]string{AnnotationAgentDial: "90"}, wantErr: []string{"not a duration"}},
		{name: "agent_dial too short", annotations: map[string]string{AnnotationAgentDial: "100ms"}, wantErr: []string{"100ms is outside 1s..10m0s"}},
		{name: "agent_dial too long", annotations: map[string]string{AnnotationAgentDial: "1h"}, wantErr: []string{"outside"}},
		{name: "kernel_params init", annotations: map[string]string{AnnotationGuestKernelParams: "quiet init=/bin/sh"}, wantErr: []string{`"init=/bin/sh": init may not be set`}},
		{name: "kernel_params bad", annotations: map[string]string{AnnotationGuestKernelParams: "a -- b"}, wantErr: []string{`"--" is not allowed`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := *base
			before.Volumes.AllowedHostPaths = slices.Clone(base.Volumes.AllowedHostPaths)
			c, err := ApplyAnnotations(base, tc.annotations)
			if !reflect.DeepEqual(*base, before) {
				t.Fatalf("ApplyAnnotations changed its input")
			}
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error, want %q", tc.wantErr)
				}
				if !errors.Is(err, ErrInvalidAnnotation) {
					t.Errorf("error does not wrap ErrInvalidAnnotation: %v", err)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c == base {
				t.Fatal("returned the input, want a copy")
			}
			tc.check(t, c)
		})
	}
}

func TestCheckKernelParams(t *testing.T) {
	cases := []struct {
		name, params, wantErr string
	}{
		{name: "empty", params: ""},
		{name: "flags and values", params: "nokaslr mitigations=off loglevel=7 printk.devkmsg=on ipv6.disable=1 cgroup_no_v1=all"},
		{name: "value with commas and slashes", params: "systemd.unit=a,b/c:d"},
		{name: "too long", params: strings.Repeat("a", MaxAnnotationKernelParams+1), wantErr: "more than 512"},
		{name: "newline", params: "quiet\ninit=/bin/sh", wantErr: "only printable ASCII"},
		{name: "tab", params: "a\tb", wantErr: "only printable ASCII"},
		{name: "non-ASCII", params: "lang=é", wantErr: "only printable ASCII"},
		{name: "double dash", params: "quiet -- serve", wantErr: `"--" is not allowed`},
		{name: "quoted value", params: `dyndbg="file x +p"`, wantErr: "without quotes"},
		{name: "single quote", params: `a='b'`, wantErr: "without quotes"},
		{name: "backslash", params: `a=b\c`, wantErr: "backslashes"},
		{name: "upper-case name (environment of init)", params: "GODEBUG=x=1", wantErr: "parameter names may hold only"},
		{name: "empty name", params: "=1", wantErr: "empty parameter name"},
		{name: "init", params: "init=/bin/sh", wantErr: "veil-agent must be the guest's init"},
		{name: "rdinit", params: "rdinit=/x", wantErr: "rdinit may not be set"},
		{name: "console", params: "console=tty0", wantErr: "console may not be set"},
		{name: "panic", params: "panic=0", wantErr: "panic may not be set"},
		{name: "tsc_early_khz", params: "tsc_early_khz=1", wantErr: "tsc_early_khz may not be set"},
		{name: "bare init word", params: "init", wantErr: "init may not be set"},
		{name: "bare serve word", params: "serve", wantErr: "veil-agent would take it as a command"},
		{name: "dash spelling of tsc_early_khz", params: "tsc-early-khz=1", wantErr: "tsc-early-khz may not be set"},
		{name: "underscore spelling of noreplace-smp", params: "noreplace_smp", wantErr: "may not be set"},
		{name: "mixed spelling of no_timer_check", params: "no-timer_check", wantErr: "may not be set"},
		{name: "long option for init", params: "--version", wantErr: "must start with a letter or digit"},
		{name: "short option for init", params: "-h", wantErr: "must start with a letter or digit"},
		{name: "option with value", params: "--shared-dir=/x", wantErr: "must start with a letter or digit"},
		{name: "leading underscore", params: "_x=1", wantErr: "must start with a letter or digit"},
		{name: "module parameter with dash", params: "8250.nr_uarts=1 sit-disable=1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckKernelParams(tc.params)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckKernelParams(%q) = %v", tc.params, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("CheckKernelParams(%q) = %v, want %q", tc.params, err, tc.wantErr)
			}
		})
	}
}

func TestAllowedAnnotations(t *testing.T) {
	got := AllowedAnnotations()
	want := []string{AnnotationGuestKernelParams, AnnotationGuestMemoryMiB, AnnotationGuestVCPUs, AnnotationAgentDial, AnnotationVirtiofsCache}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("AllowedAnnotations = %q, want %q", got, want)
	}
	for _, k := range got {
		if !strings.HasPrefix(k, AnnotationPrefix+"config.") {
			t.Errorf("%s lacks the io.veil.config. prefix", k)
		}
	}
}
