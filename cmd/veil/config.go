package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/spf13/cobra"

	"github.com/veil-runtime/veil/runtime/config"
)

func newConfigCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show or validate Veil's configuration",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newConfigShowCommand(g), newConfigValidateCommand())
	return cmd
}

type configShowOptions struct {
	json bool
}

// configShow is `veil config show --json`.
type configShow struct {
	Path string             `json:"path"`
	Keys []config.KeySource `json:"keys"`
}

func newConfigShowCommand(g *globalOptions) *cobra.Command {
	var opts configShowOptions
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Print the effective configuration and where each key came from",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := config.Path(g.configPath)
			cfg, keys, err := config.Describe(path)
			if err != nil {
				return err
			}
			if opts.json {
				return writeJSON(cmd.OutOrStdout(), configShow{Path: path, Keys: keys})
			}
			b, err := toml.Marshal(cfg)
			if err != nil {
				return fmt.Errorf("encode config: %w", err)
			}
			_, _ = fmt.Fprintf(cmd.OutOrStdout(), "# effective configuration; file: %s\n", path)
			return annotate(cmd.OutOrStdout(), b, keys)
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON: every key with its value and source")
	return cmd
}

// annotate copies the TOML text b to w with each key's source as a
// trailing comment.
func annotate(w io.Writer, b []byte, keys []config.KeySource) error {
	src := make(map[string]string, len(keys))
	for _, k := range keys {
		src[k.Key] = k.Source
	}
	table := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		trim := strings.TrimSpace(line)
		if strings.HasPrefix(trim, "[") && strings.HasSuffix(trim, "]") {
			table = strings.Trim(trim, "[]")
		} else if k, _, ok := strings.Cut(trim, "="); ok {
			key := strings.TrimSpace(k)
			if table != "" {
				key = table + "." + key
			}
			if s, ok := src[key]; ok {
				line += "  # " + s
			}
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	return sc.Err()
}

func newConfigValidateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE",
		Short: "Check a configuration file; errors name the line and key",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Load accepts a missing file at the default path; validate does not.
			if _, err := os.Stat(args[0]); err != nil {
				return fmt.Errorf("read config: %w", err)
			}
			if _, err := config.Load(args[0]); err != nil {
				return err
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "%s: valid\n", args[0])
			return err
		},
	}
}
