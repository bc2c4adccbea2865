package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/veil-runtime/veil/runtime/inspect"
)

type execOptions struct {
	timeout time.Duration
	env     []string
	stdin   bool
	json    bool
}

func newSandboxExecCommand(g *globalOptions, e *env) *cobra.Command {
	var opts execOptions
	cmd := &cobra.Command{
		Use:   "exec ID -- CMD [ARG...]",
		Short: "Run a debug command in a sandbox's guest, outside any container",
		Long: "Run a command in the guest through the agent, outside every container (as the\n" +
			"agent, root in the guest's namespaces). Output is buffered and bounded (1 MiB\n" +
			"per stream). veil exits with the command's exit status.",
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dash := cmd.ArgsLenAtDash(); dash != 1 && dash != -1 {
				return fmt.Errorf("usage: veil sandbox exec ID -- CMD [ARG...]")
			}
			r, err := g.reader(e)
			if err != nil {
				return err
			}
			xo := inspect.ExecOptions{Argv: args[1:], Env: opts.env, Timeout: opts.timeout}
			if opts.stdin {
				if xo.Stdin, err = io.ReadAll(cmd.InOrStdin()); err != nil {
					return fmt.Errorf("read stdin: %w", err)
				}
			}
			resp, err := r.Exec(cmd.Context(), args[0], e.dial, xo)
			if err != nil {
				return err
			}
			if opts.json {
				if err := writeJSON(cmd.OutOrStdout(), resp); err != nil {
					return err
				}
			} else {
				_, _ = cmd.OutOrStdout().Write(resp.Stdout)
				_, _ = cmd.ErrOrStderr().Write(resp.Stderr)
				for _, tr := range []struct {
					name string
					cut  bool
				}{{"stdout", resp.StdoutTruncated}, {"stderr", resp.StderrTruncated}} {
					if tr.cut {
						_, _ = fmt.Fprintf(cmd.ErrOrStderr(), "veil: %s truncated at the agent's limit\n", tr.name)
					}
				}
			}
			switch {
			case resp.TimedOut:
				return &exitError{code: int(resp.ExitStatus), msg: fmt.Sprintf("killed after the %s timeout", opts.timeout)}
			case resp.ExitStatus != 0:
				return &exitError{code: int(resp.ExitStatus)}
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&opts.timeout, "timeout", 30*time.Second, "kill the command after this long")
	cmd.Flags().StringArrayVarP(&opts.env, "env", "e", nil, "add KEY=VALUE to the command's environment")
	cmd.Flags().BoolVarP(&opts.stdin, "stdin", "i", false, "send veil's standard input to the command (read to EOF first)")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print the agent's answer as JSON")
	return cmd
}
