package registry

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/hypervisor/ch"
	"github.com/veil-runtime/veil/runtime/hypervisor/qemu"
)

func TestEntries(t *testing.T) {
	cases := []struct {
		name       string
		wantBinary string
		wantDriver any
		wantConn   any
		// What the host checks and the sandbox ask of the entry.
		vhostVsock, hardwareKVM, opensEndpoints bool
	}{
		{name: config.HypervisorQEMU, wantBinary: "qemu-system-x86_64", wantDriver: &qemu.Driver{}, wantConn: &qemu.Remote{},
			vhostVsock: true},
		{name: config.HypervisorCloudHypervisor, wantBinary: "cloud-hypervisor", wantDriver: &ch.Driver{}, wantConn: &ch.Remote{},
			hardwareKVM: true, opensEndpoints: true},
	}
	if got, want := len(All()), len(cases); got != want {
		t.Fatalf("%d entries, the table has %d: add the new one here", got, want)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, ok := Lookup(tc.name)
			if !ok {
				t.Fatalf("no entry %q", tc.name)
			}
			if e.Name != tc.name || e.Binary != tc.wantBinary || e.PathKey == "" || e.Install == "" || e.Title == "" ||
				e.Path == nil || e.New == nil || e.Connect == nil {
				t.Fatalf("incomplete entry %+v", e)
			}
			if e.VhostVsock != tc.vhostVsock || e.HardwareKVM != tc.hardwareKVM || e.OpensEndpoints != tc.opensEndpoints {
				t.Errorf("VhostVsock, HardwareKVM, OpensEndpoints = %v, %v, %v; want %v, %v, %v",
					e.VhostVsock, e.HardwareKVM, e.OpensEndpoints, tc.vhostVsock, tc.hardwareKVM, tc.opensEndpoints)
			}

			// The config file's path key is the one Path reads.
			dir := t.TempDir()
			file := filepath.Join(dir, "config.toml")
			section, key, _ := strings.Cut(e.PathKey, ".")
			if err := os.WriteFile(file, []byte("["+section+"]\nname = \""+e.Name+"\"\n"+key+" = \"/opt/vmm\"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(file)
			if err != nil {
				t.Fatalf("config with hypervisor.name %q: %v", e.Name, err)
			}
			if got := e.Path(cfg.Hypervisor); got != "/opt/vmm" {
				t.Errorf("Path = %q after %s = /opt/vmm", got, e.PathKey)
			}
			if got := e.BinaryPath(cfg); got != "/opt/vmm" {
				t.Errorf("BinaryPath = %q, want the configured /opt/vmm", got)
			}
			if got := e.BinaryPath(config.Default()); got != e.Binary {
				t.Errorf("BinaryPath of the default config = %q, want %q", got, e.Binary)
			}

			// Selecting the name gives this entry's driver.
			drv, name, reason, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if name != e.Name || !strings.Contains(reason, e.Name) {
				t.Errorf("New: %q (%s), want %q", name, reason, e.Name)
			}
			if reflect.TypeOf(drv) != reflect.TypeOf(tc.wantDriver) {
				t.Errorf("New built %T, want %T", drv, tc.wantDriver)
			}
			if d := e.New(config.Default()); reflect.TypeOf(d) != reflect.TypeOf(tc.wantDriver) {
				t.Errorf("New(default config) built %T, want %T", d, tc.wantDriver)
			}

			r, closeFn := e.Connect(dir)
			defer closeFn()
			if reflect.TypeOf(r) != reflect.TypeOf(tc.wantConn) {
				t.Errorf("Connect gave %T, want %T", r, tc.wantConn)
			}
		})
	}
}

func TestNamesUniqueAndKnownToConfig(t *testing.T) {
	names := Names()
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			t.Errorf("name %q twice", n)
		}
		seen[n] = true
		if n == config.HypervisorAuto || n == "" {
			t.Errorf("entry named %q: that name means automatic selection", n)
		}
	}
	// runtime/config validates hypervisor.name against its own list (it
	// cannot import this package): both must be the same.
	if !slices.Equal(names, config.KnownHypervisors) {
		t.Errorf("registry names %v, config.KnownHypervisors %v", names, config.KnownHypervisors)
	}
	binaries := map[string]bool{}
	for _, e := range All() {
		if binaries[e.Binary] {
			t.Errorf("binary %q twice", e.Binary)
		}
		binaries[e.Binary] = true
	}
}

// TestSelection checks that config accepts each entry's name for
// hypervisor.name and that Resolve then gives that entry.
func TestSelection(t *testing.T) {
	type selCase struct {
		name     string
		hvName   string
		wantErr  string
		wantName string
	}
	cases := []selCase{
		{name: "unknown name refused by config", hvName: "xen", wantErr: `unknown hypervisor "xen"`},
	}
	for _, n := range Names() {
		cases = append(cases, selCase{name: "configured " + n, hvName: n, wantName: n})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Hypervisor.Name = tc.hvName
			err := cfg.Validate()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Validate = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			e, _, err := Resolve(cfg)
			if err != nil || e.Name != tc.wantName {
				t.Fatalf("Resolve = %q, %v; want %q", e.Name, err, tc.wantName)
			}
		})
	}
}

func TestAutoPicksAnEntry(t *testing.T) {
	cfg := config.Default()
	cfg.Hypervisor.Name = config.HypervisorAuto
	for _, f := range []config.HostFacts{{}, {CloudHypervisor: "/usr/bin/cloud-hypervisor", CPUVirt: true, KVM: true}} {
		name, reason := cfg.Hypervisor.Select(f)
		if _, ok := Lookup(name); !ok {
			t.Errorf("auto on %+v chose %q (%s), which is not in the registry", f, name, reason)
		}
	}
}
