package main

import (
	"github.com/spf13/cobra"

	"github.com/veil-runtime/veil/runtime/inspect"
)

type consoleOptions struct {
	follow bool
}

func newSandboxConsoleCommand(g *globalOptions) *cobra.Command {
	var opts consoleOptions
	cmd := &cobra.Command{
		Use:   "console ID",
		Short: "Print a sandbox's guest console log",
		Long: "Print what the host kept of a sandbox's guest console (at most console.max_bytes,\n" +
			"the older rotated half first). The guest wrote it: control characters, escape\n" +
			"sequences and invalid UTF-8 are printed escaped (\\x1b, \\u202e, ...).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			r := &inspect.Reader{StateDir: cfg.StateDir}
			return r.Console(cmd.Context(), args[0], cmd.OutOrStdout(), opts.follow)
		},
	}
	cmd.Flags().BoolVarP(&opts.follow, "follow", "f", false, "keep printing what the guest writes until interrupted or the sandbox stops")
	return cmd
}
