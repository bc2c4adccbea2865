package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/veil-runtime/veil/runtime/inspect"
)

type versionOptions struct {
	json bool
}

func newVersionCommand(g *globalOptions) *cobra.Command {
	var opts versionOptions
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the versions of Veil, the agent protocol, the hypervisor and the guest kernel",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			v := inspect.ReadVersions(cmd.Context(), cfg)
			if opts.json {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(v)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "veil:           %s\nagent protocol: %d\nhypervisor:     %s (%s)\nguest kernel:   %s\n",
				v.Veil, v.AgentProtocol, v.Hypervisor, v.HypervisorVersion, v.GuestKernel)
			return err
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}
