// Package config owns Veil's runtime configuration: the TOML file
// (/etc/veil/config.toml, or the file named by $VEIL_CONFIG), its defaults
// and its validation.
package config
