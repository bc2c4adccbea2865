package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoad(t *testing.T) {
	cases := []struct {
		name    string
		file    string
		wantErr string
		check   func(*testing.T, *Config)
	}{
		{
			name: "overrides keep other defaults",
			file: "[guest]\nvcpus = 2\n[timeouts]\nvm_start = \"10s\"\n",
			check: func(t *testing.T, c *Config) {
				if c.Guest.VCPUs != 2 || c.Guest.MemoryMiB != 256 {
					t.Errorf("guest = %+v", c.Guest)
				}
				if c.Timeouts.VMStart.Duration != 10*time.Second {
					t.Errorf("vm_start = %v", c.Timeouts.VMStart)
				}
			},
		},
		{name: "unknown key names line and key", file: "log_level = \"info\"\n[guest]\nvcpu = 2\n", wantErr: `line 3: unknown key "guest.vcpu"`},
		{name: "syntax error names line", file: "[guest\n", wantErr: "line 1"},
		{name: "bad duration", file: "[timeouts]\nstop = \"soon\"\n", wantErr: "line 2"},
		{name: "unknown hypervisor", file: "[hypervisor]\nname = \"xen\"\n", wantErr: `unknown hypervisor "xen" (known: qemu, cloud-hypervisor, auto)`},
		{
			name: "cloud-hypervisor with its path",
			file: "[hypervisor]\nname = \"cloud-hypervisor\"\ncloud_hypervisor_path = \"/opt/ch/cloud-hypervisor\"\n",
			check: func(t *testing.T, c *Config) {
				if c.Hypervisor.Name != HypervisorCloudHypervisor || c.Hypervisor.CloudHypervisorPath != "/opt/ch/cloud-hypervisor" {
					t.Errorf("hypervisor = %+v", c.Hypervisor)
				}
			},
		},
		{
			name: "auto",
			file: "[hypervisor]\nname = \"auto\"\n",
			check: func(t *testing.T, c *Config) {
				if c.Hypervisor.Name != HypervisorAuto {
					t.Errorf("name = %q", c.Hypervisor.Name)
				}
			},
		},
		{
			name: "empty name means auto",
			file: "[hypervisor]\nname = \"\"\n",
			check: func(t *testing.T, c *Config) {
				if c.Hypervisor.Name != "" {
					t.Errorf("name = %q", c.Hypervisor.Name)
				}
			},
		},
		{
			name: "default is auto",
			file: "[guest]\nvcpus = 1\n",
			check: func(t *testing.T, c *Config) {
				if c.Hypervisor.Name != HypervisorAuto {
					t.Errorf("name = %q", c.Hypervisor.Name)
				}
			},
		},
		{name: "too little memory", file: "[guest]\nmemory_mib = 8\n", wantErr: "guest.memory_mib"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "config.toml")
			if err := os.WriteFile(p, []byte(tc.file), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := Load(p)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestLoadMissing(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "nope.toml")); err == nil {
		t.Fatal("missing explicit file: want error")
	}
}
