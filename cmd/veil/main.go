// Command veil is the operator's tool for Veil sandboxes: host readiness,
// configuration, and read-only inspection and debugging of the sandboxes
// on this host. Every command is a thin layer over a package
// (runtime/hostcheck, runtime/config, runtime/inspect).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/moby/sys/reexec"
	"github.com/spf13/cobra"
)

func main() {
	// `veil check` tries the jail (runtime/jail), whose stage is a
	// re-executed copy of this binary; that copy stops here.
	if reexec.Init() {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand().ExecuteContext(ctx)
	stop()
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintln(os.Stderr, "veil:", ee.msg)
		}
		os.Exit(ee.code)
	case err != nil:
		fmt.Fprintln(os.Stderr, "veil:", err)
		os.Exit(1)
	}
}

// exitError ends veil with a given status; msg, when set, goes to stderr.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string {
	if e.msg != "" {
		return e.msg
	}
	return fmt.Sprintf("exit status %d", e.code)
}

// globalOptions are the root command's persistent flags.
type globalOptions struct {
	// configPath overrides $VEIL_CONFIG and /etc/veil/config.toml.
	configPath string
}

func newRootCommand() *cobra.Command { return newRootCommandEnv(defaultEnv()) }

func newRootCommandEnv(e *env) *cobra.Command {
	g := &globalOptions{}
	cmd := &cobra.Command{
		Use:           "veil",
		Short:         "Inspect and debug Veil micro-VM sandboxes",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.PersistentFlags().StringVar(&g.configPath, "config", "", "Veil config file (default $VEIL_CONFIG, else /etc/veil/config.toml)")
	cmd.AddCommand(
		newVersionCommand(g),
		newCheckCommand(g, e),
		newConfigCommand(g),
		newSandboxCommand(g, e),
		newVMCommand(g, e),
		newPoolCommand(g),
		newMonitorCommand(g, e),
	)
	return cmd
}
