package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/veil-runtime/veil/runtime/hostcheck"
)

type checkOptions struct {
	json             bool
	containerdConfig string
}

func newCheckCommand(g *globalOptions, e *env) *cobra.Command {
	var opts checkOptions
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check that this host can run Veil sandboxes",
		Long: "Check virtualization, vsock, tun, the helper binaries, the guest images, cgroups,\n" +
			"containerd's runtime config, and whether the helpers' confinement can be applied:\n" +
			"the sandbox cgroup's controllers, the jail's uid range, namespaces and mount API\n" +
			"(tried for real when run as root), seccomp (the kernel's and QEMU's -sandbox) and\n" +
			"/dev/kvm's group. Exits 0 when VMs can run with some hypervisor (no FAIL line).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			rep := hostcheck.Run(cmd.Context(), cfg, e.host, hostcheck.Options{ContainerdConfig: opts.containerdConfig})
			if opts.json {
				if err := writeJSON(cmd.OutOrStdout(), rep); err != nil {
					return err
				}
			} else if err := printReport(cmd, rep); err != nil {
				return err
			}
			if !rep.Ready {
				return &exitError{code: 1, msg: "host not ready: fix the FAIL lines above"}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	cmd.Flags().StringVar(&opts.containerdConfig, "containerd-config", hostcheck.DefaultContainerdConfig, "containerd config file to look for the Veil runtime in")
	return cmd
}

// printReport prints one line per check (status, name, detail) and a
// "fix:" line under each that is not OK; the name column is as wide as
// the longest name, 18 at least.
func printReport(cmd *cobra.Command, rep hostcheck.Report) error {
	w := cmd.OutOrStdout()
	width := 18
	for _, r := range rep.Results {
		width = max(width, len(r.Name))
	}
	for _, r := range rep.Results {
		_, _ = fmt.Fprintf(w, "%-4s  %-*s  %s\n", r.Status, width, r.Name, r.Detail)
		if r.Fix != "" && r.Status != hostcheck.OK {
			fix := strings.ReplaceAll(r.Fix, "\n", "\n"+strings.Repeat(" ", width+12))
			_, _ = fmt.Fprintf(w, "%-4s  %-*s  fix: %s\n", "", width, "", fix)
		}
	}
	verdict := "ready"
	if !rep.Ready {
		verdict = "NOT ready"
	}
	_, err := fmt.Fprintf(w, "\nhost %s: sandboxes would run on %s (accel %s)\n", verdict, rep.Hypervisor, rep.Accel)
	return err
}
