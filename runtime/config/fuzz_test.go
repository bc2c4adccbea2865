package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pelletier/go-toml/v2"
)

// FuzzLoad feeds arbitrary bytes to Load as config.toml. Whatever the
// file, Load must not panic and must answer with either a valid
// configuration or an error naming the file; an accepted configuration
// must survive a TOML round trip (marshal, load again) unchanged.
func FuzzLoad(f *testing.F) {
	for _, seed := range []string{
		"",
		"log_level = \"debug\"\nstate_dir = \"/run/veil/sandboxes\"\n",
		"[guest]\nvcpus = 2\nmemory_mib = 512\nkernel_params = \"quiet\"\n[timeouts]\nvm_start = \"10s\"\n",
		"[hypervisor]\nname = \"cloud-hypervisor\"\ncloud_hypervisor_path = \"/opt/ch/cloud-hypervisor\"\n",
		"[volumes]\nallowed_host_paths = [\"/var/lib/kubelet\", \"/data\"]\n",
		"[volumes]\nallowed_host_paths = [\"/\"]\n",
		"[volumes]\nallowed_host_paths = [\"relative/../x\"]\n",
		"[jail]\nenabled = true\nuid_base = 4294967295\nuid_count = 4294967295\n",
		"[cgroups]\nparent = \"/\"\npids_limit = -1\n",
		"[guest]\nvcpus = 0\n",
		"[guest]\nvcpus = 99999999999999999999\n",
		"[timeouts]\nstop = \"-1s\"\nagent_dial = \"9223372036854775807ns\"\n",
		"[timeouts]\nstop = 5\n",
		"[guest\n",
		"log_level = \"info\"\n[guest]\nvcpu = 2\n",
		"[[guest]]\n",
		"guest = 1\n",
		"a.b.c = 1\n",
		"\"\\u0000\" = 1\n",
		"[virtiofs]\ncache = \"sometimes\"\n",
		"[console]\nmax_bytes = 0\n",
	} {
		f.Add([]byte(seed))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "config.toml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path)
		if err != nil {
			if c != nil {
				t.Fatalf("Load returned a config with error %v", err)
			}
			if !strings.HasPrefix(err.Error(), "config "+path+": ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Load accepted an invalid config: %v", err)
		}
		if !allValidUTF8(c) {
			// TOML strings are UTF-8; go-toml rejects anything else, so
			// this cannot happen, but a round trip would not be exact.
			t.Fatalf("Load accepted invalid UTF-8: %+v", c)
		}
		b, err := toml.Marshal(c)
		if err != nil {
			t.Fatalf("marshal accepted config %+v: %v", c, err)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		again, err := Load(path)
		if err != nil {
			t.Fatalf("accepted config does not load again: %v\n%s", err, b)
		}
		if !reflect.DeepEqual(normalize(c), normalize(again)) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v\n%s", c, again, b)
		}
	})
}

// normalize treats an empty list like a missing one: TOML cannot tell
// them apart once marshalled.
func normalize(c *Config) *Config {
	n := *c
	if len(n.Volumes.AllowedHostPaths) == 0 {
		n.Volumes.AllowedHostPaths = nil
	}
	return &n
}

func allValidUTF8(c *Config) bool {
	for _, s := range append([]string{c.StateDir, c.LogLevel, c.Guest.Kernel, c.Guest.Initrd, c.Guest.KernelParams}, c.Volumes.AllowedHostPaths...) {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}

// FuzzApplyAnnotations applies arbitrary io.veil.* annotations to the
// default configuration. ApplyAnnotations must never change its input,
// must wrap ErrInvalidAnnotation in every error, and what it accepts
// must be valid, in range and, for kernel parameters, pass the
// allow-list rules of CheckKernelParams as checked here independently.
func FuzzApplyAnnotations(f *testing.F) {
	for _, s := range []struct{ key, value, params string }{
		{AnnotationGuestVCPUs, "2", "quiet"},
		{AnnotationGuestMemoryMiB, "1024", "mitigations=off loglevel=7"},
		{AnnotationVirtiofsCache, "never", ""},
		{AnnotationAgentDial, "90s", "  "},
		{AnnotationAgentDial, "1ns", "init=/bin/sh"},
		{AnnotationGuestVCPUs, "0", "rd-init=/bin/sh"},
		{AnnotationGuestVCPUs, "256", "no-timer-check"},
		{AnnotationGuestMemoryMiB, "4294967296", "console=ttyS1"},
		{AnnotationGuestMemoryMiB, "+64", "-- serve"},
		{"io.veil.config.guest.kernel", "/tmp/evil", "--version"},
		{"io.veil.", "", "a=\"b c\""},
		{"other.annotation", "x", "x=\\y"},
		{AnnotationVirtiofsCache, "Always", "ok.param=1\tbad=2"},
		{AnnotationGuestVCPUs, "1", "vERSION"},
		{AnnotationGuestVCPUs, "1", "tsc_early-khz=1 panic=0"},
		{AnnotationGuestVCPUs, "1", "a=b=c x.y-z_1=\x7f"},
		{AnnotationGuestVCPUs, "1", "é=1"},
	} {
		f.Add(s.key, s.value, s.params)
	}
	f.Fuzz(func(t *testing.T, key, value, params string) {
		base := Default()
		base.Guest.KernelParams = "quiet"
		before := *base
		before.Volumes.AllowedHostPaths = append([]string(nil), base.Volumes.AllowedHostPaths...)
		ann := map[string]string{key: value, AnnotationGuestKernelParams: params}
		c, err := ApplyAnnotations(base, ann)
		if !reflect.DeepEqual(&before, base) {
			t.Fatalf("ApplyAnnotations changed its input: %+v", base)
		}
		kerr := CheckKernelParams(params)
		if err != nil {
			if c != nil || !errors.Is(err, ErrInvalidAnnotation) {
				t.Fatalf("error %v (config %v) does not wrap ErrInvalidAnnotation", err, c)
			}
			return
		}
		if kerr != nil {
			t.Fatalf("accepted kernel params %q that CheckKernelParams refuses: %v", params, kerr)
		}
		if err := kernelParamsAllowed(params); err != "" {
			t.Fatalf("accepted kernel params %q: %s", params, err)
		}
		if want := strings.TrimSpace("quiet " + strings.TrimSpace(params)); key != AnnotationGuestKernelParams && c.Guest.KernelParams != want {
			t.Fatalf("kernel params = %q, want %q", c.Guest.KernelParams, want)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted an invalid config: %v", err)
		}
		if c.Guest.VCPUs < 1 || c.Guest.VCPUs > MaxAnnotationVCPUs && c.Guest.VCPUs != base.Guest.VCPUs {
			t.Fatalf("vcpus %d out of range", c.Guest.VCPUs)
		}
		if c.Guest.MemoryMiB > MaxAnnotationMemoryMiB && c.Guest.MemoryMiB != base.Guest.MemoryMiB {
			t.Fatalf("memory %d out of range", c.Guest.MemoryMiB)
		}
		if d := c.Timeouts.AgentDial.Duration; d != base.Timeouts.AgentDial.Duration && (d < MinAnnotationAgentDial || d > MaxAnnotationAgentDial) {
			t.Fatalf("agent_dial %s out of range", d)
		}
		// Only the allowed fields may change.
		got := *c
		got.Guest.VCPUs, got.Guest.MemoryMiB, got.Guest.KernelParams = base.Guest.VCPUs, base.Guest.MemoryMiB, base.Guest.KernelParams
		got.Virtiofs.Cache, got.Timeouts.AgentDial = base.Virtiofs.Cache, base.Timeouts.AgentDial
		if !reflect.DeepEqual(&got, base) {
			t.Fatalf("annotations changed a field outside the allow-list: %+v", c)
		}
	})
}

// kernelParamsAllowed restates the kernel parameter policy word by word,
// as the kernel splits the command line, and says what breaks it ("" if
// nothing).
func kernelParamsAllowed(s string) string {
	if len(s) > MaxAnnotationKernelParams {
		return "too long"
	}
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return "non-printable or non-ASCII byte"
		}
	}
	for _, w := range strings.Split(s, " ") {
		if w == "" {
			continue
		}
		if w == "--" {
			return `"--"`
		}
		name, value, _ := strings.Cut(w, "=")
		if name == "" || !isAlnumLower(name[0]) {
			return "name does not start with a letter or digit"
		}
		if strings.ContainsAny(value, "\"'\\") {
			return "quote or backslash in a value"
		}
		if _, ok := reservedKernelParams[strings.ReplaceAll(name, "-", "_")]; ok {
			return "reserved name " + name
		}
		for i := 0; i < len(name); i++ {
			if c := name[i]; !isAlnumLower(c) && c != '_' && c != '-' && c != '.' {
				return "bad character in name " + name
			}
		}
	}
	return ""
}

func isAlnumLower(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
