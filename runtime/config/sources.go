package config

import (
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/pelletier/go-toml/v2"
)

// SourceDefault is the source of a key the file does not set.
const SourceDefault = "default"

// KeySource is one key of the effective configuration.
type KeySource struct {
	// Key is the dotted TOML key, e.g. "guest.kernel".
	Key string `json:"key"`
	// Value is the effective value as TOML would print it.
	Value any `json:"value"`
	// Source is the file that set the key, or SourceDefault.
	Source string `json:"source"`
}

// Path is the configuration file Veil reads: override when set, else
// $VEIL_CONFIG, else DefaultPath.
func Path(override string) string {
	if override != "" {
		return override
	}
	if p := os.Getenv(EnvPath); p != "" {
		return p
	}
	return DefaultPath
}

// Describe loads the file at path like Load and reports every key of the
// effective configuration with its value and where it came from, sorted
// by key.
func Describe(path string) (*Config, []KeySource, error) {
	cfg, err := Load(path)
	if err != nil {
		return nil, nil, err
	}
	set, err := KeysSet(path)
	if err != nil {
		return nil, nil, err
	}
	b, err := toml.Marshal(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("encode config: %w", err)
	}
	var eff map[string]any
	if err := toml.Unmarshal(b, &eff); err != nil {
		return nil, nil, fmt.Errorf("decode effective config: %w", err)
	}
	values := map[string]any{}
	flatten("", eff, values)
	out := make([]KeySource, 0, len(values))
	for k, v := range values {
		src := SourceDefault
		if set[k] {
			src = path
		}
		out = append(out, KeySource{Key: k, Value: v, Source: src})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return cfg, out, nil
}

// KeysSet reports the dotted keys the file at path sets. A missing file
// at DefaultPath sets nothing.
func KeysSet(path string) (map[string]bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && path == DefaultPath {
			return map[string]bool{}, nil
		}
		return nil, fmt.Errorf("read config: %w", err)
	}
	var m map[string]any
	if err := toml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, describe(err))
	}
	values := map[string]any{}
	flatten("", m, values)
	set := make(map[string]bool, len(values))
	for k := range values {
		set[k] = true
	}
	return set, nil
}

// flatten stores the leaves of the nested table m under dotted keys.
func flatten(prefix string, m map[string]any, out map[string]any) {
	for k, v := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok {
			flatten(key, sub, out)
			continue
		}
		out[key] = v
	}
}
