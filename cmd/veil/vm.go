package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newVMCommand(g *globalOptions, e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vm",
		Short: "Ask a sandbox's VMM about its VM",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newVMInfoCommand(g, e))
	return cmd
}

type vmInfoOptions struct {
	json bool
}

func newVMInfoCommand(g *globalOptions, e *env) *cobra.Command {
	var opts vmInfoOptions
	cmd := &cobra.Command{
		Use:   "info ID",
		Short: "Print the VMM's view of a sandbox's VM (QEMU query-status, Cloud Hypervisor vm.info)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := g.reader(e)
			if err != nil {
				return err
			}
			info, err := r.VMInfo(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if opts.json {
				return writeJSON(cmd.OutOrStdout(), info)
			}
			t := newTable(cmd.OutOrStdout(), "ID", "HYPERVISOR", "STATE", "MEMORY")
			mem := "-"
			if info.MemoryActualBytes > 0 {
				mem = humanBytes(uint64(info.MemoryActualBytes))
			}
			t.row(info.ID, info.Hypervisor, info.State, mem)
			if err := t.flush(); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "\n%s\n", info.Raw)
			return err
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}
