package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/version"
)

type versionOptions struct {
	json bool
}

type versionInfo struct {
	Veil          string `json:"veil"`
	AgentProtocol uint32 `json:"agent_protocol"`
}

func newVersionCommand() *cobra.Command {
	var opts versionOptions
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print Veil's version and agent protocol version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := versionInfo{Veil: version.Version, AgentProtocol: api.APIVersion}
			if opts.json {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(info)
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "veil:           %s\nagent protocol: %d\n", info.Veil, info.AgentProtocol)
			return err
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}
