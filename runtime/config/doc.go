// Package config owns Veil's runtime configuration: the TOML file
// (/etc/veil/config.toml, or the file named by $VEIL_CONFIG), its defaults
// and its validation, and the choice of hypervisor for hypervisor.name
// "auto" (Hypervisor.Resolve).
package config
