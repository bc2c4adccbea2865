// Package config owns Veil's runtime configuration: the TOML file
// (/etc/veil/config.toml, or the file named by $VEIL_CONFIG), its defaults
// and its validation, the choice of hypervisor for hypervisor.name "auto"
// (Hypervisor.Resolve) among KnownHypervisors (the names of
// runtime/hypervisor/registry's entries; the registry, not this package,
// builds the drivers), and the per-sandbox overrides a sandbox may make
// with the allowlisted io.veil.config.* annotations (ApplyAnnotations).
package config
