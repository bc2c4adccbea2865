package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veil-runtime/veil/runtime/inspect"
)

func TestVersionCommand(t *testing.T) {
	dir := t.TempDir()
	kernel := filepath.Join(dir, "vmlinux")
	if err := os.WriteFile(kernel, []byte("....Linux version 6.1.192-veil (builder) #1"), 0o644); err != nil {
		t.Fatal(err)
	}
	qemu := filepath.Join(dir, "qemu")
	if err := os.WriteFile(qemu, []byte("#!/bin/sh\necho 'QEMU emulator version 9.9.9'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.toml")
	body := "[hypervisor]\nname = \"qemu\"\nqemu_path = \"" + qemu + "\"\n[guest]\nkernel = \"" + kernel + "\"\n"
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		args  []string
		check func(t *testing.T, out string)
	}{
		{"table", []string{"version", "--config", cfg}, func(t *testing.T, out string) {
			for _, want := range []string{"agent protocol: 1", "guest kernel:   6.1.192-veil", "hypervisor:     qemu (QEMU emulator version 9.9.9)"} {
				if !strings.Contains(out, want) {
					t.Errorf("output %q lacks %q", out, want)
				}
			}
		}},
		{"json", []string{"version", "--json", "--config", cfg}, func(t *testing.T, out string) {
			var v inspect.Versions
			if err := json.Unmarshal([]byte(out), &v); err != nil || v.Veil == "" || v.GuestKernel != "6.1.192-veil" {
				t.Errorf("json %q: %+v %v", out, v, err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			cmd := newRootCommand()
			cmd.SetOut(&buf)
			cmd.SetArgs(tc.args)
			if err := cmd.Execute(); err != nil {
				t.Fatal(err)
			}
			tc.check(t, buf.String())
		})
	}
}
