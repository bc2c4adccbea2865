package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/veil-runtime/veil/runtime/inspect"
)

func newSandboxCommand(g *globalOptions, e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "sandbox",
		Aliases: []string{"sandboxes", "sb"},
		Short:   "Inspect and debug the sandboxes on this host",
		Args:    cobra.NoArgs,
	}
	cmd.AddCommand(
		newSandboxListCommand(g, e),
		newSandboxInspectCommand(g, e),
		newSandboxConsoleCommand(g),
		newSandboxMetricsCommand(g, e),
		newSandboxExecCommand(g, e),
		newSandboxCleanupCommand(g, e),
	)
	return cmd
}

type sandboxListOptions struct {
	json  bool
	quiet bool
}

func newSandboxListCommand(g *globalOptions, e *env) *cobra.Command {
	var opts sandboxListOptions
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List sandboxes from their state directories",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := g.reader(e)
			if err != nil {
				return err
			}
			sbs, err := r.List()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			switch {
			case opts.json:
				if sbs == nil {
					sbs = []inspect.SandboxInfo{}
				}
				return writeJSON(w, sbs)
			case opts.quiet:
				for _, sb := range sbs {
					_, _ = fmt.Fprintln(w, sb.ID)
				}
				return nil
			}
			t := newTable(w, "ID", "HYPERVISOR", "VMM PID", "STATE", "AGE", "CONTAINERS")
			for _, sb := range sbs {
				pid := "-"
				if sb.VMMPid > 0 {
					pid = fmt.Sprint(sb.VMMPid)
				}
				t.row(sb.ID, orDash(sb.Hypervisor), pid, sb.State, humanDuration(time.Since(sb.Created)), orDash(strings.Join(sb.Containers, ",")))
			}
			return t.flush()
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	cmd.Flags().BoolVarP(&opts.quiet, "quiet", "q", false, "print only ids")
	return cmd
}

// sandboxInspect is `veil sandbox inspect`'s answer: the state directory's
// view plus the guest images the config names.
func newSandboxInspectCommand(g *globalOptions, e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect ID",
		Short: "Print a sandbox's state directory view as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			r := &inspect.Reader{StateDir: cfg.StateDir, ProcRoot: e.procRoot}
			sb, err := r.Get(args[0])
			if err != nil {
				return err
			}
			sb.Kernel, sb.Initrd = cfg.Guest.Kernel, cfg.Guest.Initrd
			return writeJSON(cmd.OutOrStdout(), sb)
		},
	}
}
