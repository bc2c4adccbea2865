package main

import (
	"github.com/spf13/cobra"

	"github.com/veil-runtime/veil/runtime/monitor"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// monitorOptions override the config's [monitor] section.
type monitorOptions struct {
	listen string
}

// newMonitorCommand serves every sandbox's metrics to Prometheus
// (runtime/monitor) until SIGINT or SIGTERM.
func newMonitorCommand(g *globalOptions, e *env) *cobra.Command {
	var o monitorOptions
	cmd := &cobra.Command{
		Use:   "monitor",
		Short: "Serve Prometheus metrics of every sandbox on this node (runs until SIGTERM)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			if err := setLogLevel(cfg); err != nil {
				return err
			}
			r, err := g.reader(e)
			if err != nil {
				return err
			}
			listen := cfg.Monitor.Listen
			if o.listen != "" {
				listen = o.listen
			}
			journal := statedir.NewStartsReader(cfg.StateDir)
			defer func() { _ = journal.Close() }()
			return monitor.Run(cmd.Context(), listen, monitor.InspectSource{Reader: r, Dial: e.dial, Journal: journal}, monitor.Options{
				SandboxTimeout: cfg.Monitor.SandboxTimeout.Duration,
				Concurrency:    cfg.Monitor.Concurrency,
			})
		},
	}
	cmd.Flags().StringVar(&o.listen, "listen", "", "address to serve /metrics on (default monitor.listen)")
	return cmd
}
