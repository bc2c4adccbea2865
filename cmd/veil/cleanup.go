package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/veil-runtime/veil/runtime/inspect"
	"github.com/veil-runtime/veil/runtime/sandbox"
)

type sandboxCleanupOptions struct {
	force bool
}

// newSandboxCleanupCommand removes what a crashed shim left of a sandbox:
// its helpers, taps, share and state directory (runtime/sandbox.Cleanup).
func newSandboxCleanupCommand(g *globalOptions, e *env) *cobra.Command {
	var opts sandboxCleanupOptions
	cmd := &cobra.Command{
		Use:   "cleanup ID",
		Short: "Remove what a crashed sandbox left behind (helpers, taps, share, state directory)",
		Long: "Remove what a crashed sandbox left behind. A sandbox whose VMM still runs is refused:\n" +
			"stop it through containerd (ctr task delete, crictl rmp), or pass --force to kill it.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := g.reader(e)
			if err != nil {
				return err
			}
			sb, err := r.Get(args[0])
			if err != nil {
				return err
			}
			if sb.State == inspect.StateRunning && !opts.force {
				return fmt.Errorf("sandbox %s is running (%s pid %d): stop it through containerd, or use --force", sb.ID, sb.Hypervisor, sb.VMMPid)
			}
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			if err := sandbox.Cleanup(cmd.Context(), cfg, sb.ID); err != nil {
				return err
			}
			_, _ = fmt.Fprintf(cmd.OutOrStdout(), "sandbox %s removed\n", sb.ID)
			return nil
		},
	}
	cmd.Flags().BoolVar(&opts.force, "force", false, "also kill a sandbox whose VMM still runs")
	return cmd
}
