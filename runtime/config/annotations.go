package config

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// AnnotationPrefix starts every annotation Veil reads. An annotation with
// this prefix that is not in the allowlist (AllowedAnnotations) is an
// error, so that a typo never goes unnoticed.
const AnnotationPrefix = "io.veil."

// The io.veil.config.* annotations a sandbox may set to override its
// configuration. They are read from the sandbox's first container's OCI
// spec (under CRI the pod sandbox container, whose spec carries the pod
// annotations containerd lets through with the runtime's pod_annotations).
const (
	// AnnotationGuestVCPUs overrides guest.vcpus: a decimal integer,
	// 1..MaxAnnotationVCPUs.
	AnnotationGuestVCPUs = "io.veil.config.guest.vcpus"
	// AnnotationGuestMemoryMiB overrides guest.memory_mib: a decimal
	// integer, MinMemoryMiB..MaxAnnotationMemoryMiB.
	AnnotationGuestMemoryMiB = "io.veil.config.guest.memory_mib"
	// AnnotationGuestKernelParams is appended to guest.kernel_params; see
	// CheckKernelParams for what it may contain.
	AnnotationGuestKernelParams = "io.veil.config.guest.kernel_params"
	// AnnotationVirtiofsCache overrides virtiofs.cache: auto, always or
	// never.
	AnnotationVirtiofsCache = "io.veil.config.virtiofs.cache"
	// AnnotationAgentDial overrides timeouts.agent_dial: a Go duration,
	// MinAnnotationAgentDial..MaxAnnotationAgentDial.
	AnnotationAgentDial = "io.veil.config.timeouts.agent_dial"
)

// Bounds of the annotation values. They are sanity limits, not a policy:
// who may set the annotations at all is decided by containerd's
// pod_annotations (CRI) or by who can run ctr.
const (
	// MinMemoryMiB is the smallest guest.memory_mib Validate accepts.
	MinMemoryMiB = 64
	// MaxAnnotationVCPUs bounds io.veil.config.guest.vcpus.
	MaxAnnotationVCPUs = 255
	// MaxAnnotationMemoryMiB bounds io.veil.config.guest.memory_mib (1 TiB).
	MaxAnnotationMemoryMiB = 1 << 20
	// MaxAnnotationKernelParams bounds the length of
	// io.veil.config.guest.kernel_params in bytes (x86's whole command
	// line is 2048 bytes).
	MaxAnnotationKernelParams = 512
	// MinAnnotationAgentDial and MaxAnnotationAgentDial bound
	// io.veil.config.timeouts.agent_dial.
	MinAnnotationAgentDial = time.Second
	MaxAnnotationAgentDial = 10 * time.Minute
)

// ErrInvalidAnnotation is wrapped by every error ApplyAnnotations returns.
var ErrInvalidAnnotation = errors.New("invalid io.veil annotation")

// annotationRule applies one allowed annotation to a configuration.
type annotationRule struct {
	key   string
	apply func(c *Config, value string) error
}

// annotationRules is the allowlist, in the order the rules are applied.
func annotationRules() []annotationRule {
	return []annotationRule{
		{AnnotationGuestVCPUs, func(c *Config, v string) error {
			n, err := parseBounded(v, 1, MaxAnnotationVCPUs)
			if err != nil {
				return err
			}
			c.Guest.VCPUs = uint32(n)
			return nil
		}},
		{AnnotationGuestMemoryMiB, func(c *Config, v string) error {
			n, err := parseBounded(v, MinMemoryMiB, MaxAnnotationMemoryMiB)
			if err != nil {
				return err
			}
			c.Guest.MemoryMiB = uint32(n)
			return nil
		}},
		{AnnotationGuestKernelParams, func(c *Config, v string) error {
			if err := CheckKernelParams(v); err != nil {
				return err
			}
			if v = strings.TrimSpace(v); v != "" {
				c.Guest.KernelParams = strings.TrimSpace(c.Guest.KernelParams + " " + v)
			}
			return nil
		}},
		{AnnotationVirtiofsCache, func(c *Config, v string) error {
			switch v {
			case "auto", "always", "never":
				c.Virtiofs.Cache = v
				return nil
			}
			return fmt.Errorf("unknown cache mode %q (auto, always, never)", v)
		}},
		{AnnotationAgentDial, func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("not a duration such as \"90s\": %w", err)
			}
			if d < MinAnnotationAgentDial || d > MaxAnnotationAgentDial {
				return fmt.Errorf("%s is outside %s..%s", d, MinAnnotationAgentDial, MaxAnnotationAgentDial)
			}
			c.Timeouts.AgentDial = Duration{d}
			return nil
		}},
	}
}

// AllowedAnnotations lists the io.veil.* annotations ApplyAnnotations
// accepts, sorted.
func AllowedAnnotations() []string {
	var keys []string
	for _, r := range annotationRules() {
		keys = append(keys, r.key)
	}
	sort.Strings(keys)
	return keys
}

// ApplyAnnotations returns a copy of cfg with the io.veil.config.*
// annotations applied; cfg itself is not changed. Annotations without
// the io.veil. prefix are ignored. Every problem is reported in one
// error wrapping ErrInvalidAnnotation, each naming its annotation: an
// io.veil.* annotation that is not allowed (the error lists the allowed
// ones), a value of the wrong type or out of range. The result is
// validated like a loaded file.
func ApplyAnnotations(cfg *Config, annotations map[string]string) (*Config, error) {
	c := *cfg
	c.Volumes.AllowedHostPaths = slices.Clone(cfg.Volumes.AllowedHostPaths)
	rules := map[string]annotationRule{}
	for _, r := range annotationRules() {
		rules[r.key] = r
	}
	var keys []string
	for k := range annotations {
		if strings.HasPrefix(k, AnnotationPrefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	// The problems go into one message around a single wrapped error, so
	// that the error crosses ttrpc to ctr as one readable line.
	var problems []string
	for _, k := range keys {
		r, ok := rules[k]
		if !ok {
			problems = append(problems, fmt.Sprintf("%q is not allowed (allowed io.veil.* annotations: %s)",
				k, strings.Join(AllowedAnnotations(), ", ")))
			continue
		}
		if err := r.apply(&c, annotations[k]); err != nil {
			problems = append(problems, fmt.Sprintf("%s=%q: %v", k, annotations[k], err))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrInvalidAnnotation, strings.Join(problems, "; "))
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%w: the configuration they give is invalid: %w", ErrInvalidAnnotation, err)
	}
	return &c, nil
}

// parseBounded parses a decimal integer in [lo, hi].
func parseBounded(v string, lo, hi uint64) (uint64, error) {
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("not a decimal integer in %d..%d", lo, hi)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%d is outside %d..%d", n, lo, hi)
	}
	return n, nil
}

// reservedKernelParams are parameter names an annotation may not set,
// written with '_' (the kernel takes '-' and '_' in a name as the same
// character; see kernelParamKey): the ones Veil sets itself (the last
// occurrence of a parameter usually wins, so appending one would override
// Veil's), the ones that replace the agent as the guest's init, and the
// words veil-agent takes as commands outside PID 1 (the kernel hands
// words it does not know to init as arguments).
var reservedKernelParams = map[string]string{
	"console":        "Veil sets the console (the host keeps the guest console log)",
	"earlycon":       "Veil sets the console",
	"earlyprintk":    "Veil sets the console",
	"panic":          "Veil sets panic=-1 so that a panicked guest ends its VM",
	"tsc":            "Veil sets tsc=reliable",
	"tsc_early_khz":  "Veil sets the TSC rate from the host's",
	"no_timer_check": "Veil sets it",
	"noreplace_smp":  "Veil sets it",
	"init":           "veil-agent must be the guest's init",
	"rdinit":         "veil-agent must be the guest's init",
	"serve":          "veil-agent would take it as a command",
	"version":        "veil-agent would take it as a command",
}

// kernelParamKey is a parameter name as the kernel compares it: '-' and
// '_' are the same character.
func kernelParamKey(name string) string { return strings.ReplaceAll(name, "-", "_") }

// CheckKernelParams reports why s cannot be appended to the guest kernel
// command line from an annotation: it must be at most
// MaxAnnotationKernelParams bytes of space-separated name or name=value
// words, names of lower-case letters, digits, '_', '-' and '.' (which
// keeps upper-case environment variables such as GODEBUG from reaching
// the agent) and starting with a letter or digit (so that no option such
// as --version reaches init), values of printable ASCII without quotes or
// backslashes; no "--" (it passes the rest to init) and none of the
// reserved names, however '-' and '_' are mixed in them.
func CheckKernelParams(s string) error {
	if len(s) > MaxAnnotationKernelParams {
		return fmt.Errorf("%d bytes, more than %d", len(s), MaxAnnotationKernelParams)
	}
	for _, r := range s {
		if r < ' ' || r > '~' {
			return fmt.Errorf("character %q: only printable ASCII and spaces are allowed", r)
		}
	}
	for _, word := range strings.Fields(s) {
		if word == "--" {
			return errors.New(`"--" is not allowed (the words after it become arguments of the guest's init)`)
		}
		name, value, _ := strings.Cut(word, "=")
		if name == "" {
			return fmt.Errorf("%q: empty parameter name", word)
		}
		for _, r := range name {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
				return fmt.Errorf("%q: parameter names may hold only a-z, 0-9, '_', '-' and '.'", word)
			}
		}
		for _, r := range value {
			if r <= ' ' || r > '~' || r == '"' || r == '\'' || r == '\\' {
				return fmt.Errorf("%q: values may hold only printable ASCII without quotes or backslashes", word)
			}
		}
		if c := name[0]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return fmt.Errorf("%q: parameter names must start with a letter or digit (words like options would reach the guest's init)", word)
		}
		if why, ok := reservedKernelParams[kernelParamKey(name)]; ok {
			return fmt.Errorf("%q: %s may not be set by an annotation (%s)", word, name, why)
		}
	}
	return nil
}
