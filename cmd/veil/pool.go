package main

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/containerd/log"
	"github.com/spf13/cobra"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/pool"
	"github.com/veil-runtime/veil/runtime/statedir"
)

func newPoolCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pool",
		Short: "Run or show the warm pool of pre-booted sandbox VMs",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newPoolServeCommand(g), newPoolLsCommand(g), newPoolKeepCommand(g))
	return cmd
}

// newPoolServeCommand runs the pool daemon (runtime/pool.Daemon) until
// SIGINT or SIGTERM, which stop every idle VM.
func newPoolServeCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Keep pool.size sandbox VMs booted and hand them to shims (runs until SIGTERM)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			if err := setLogLevel(cfg); err != nil {
				return err
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			path := config.Path(g.configPath)
			d := &pool.Daemon{Config: cfg, ConfigPath: path, KeeperArgs: []string{exe, "--config", path, "pool", "keep"}}
			return d.Serve(cmd.Context())
		},
	}
}

// newPoolKeepCommand is one pool VM's keeper, started by the daemon with
// its owner connection as fd 3 (runtime/pool.Keep).
func newPoolKeepCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:    "keep DIR/",
		Short:  "Boot and keep one pool VM (started by `veil pool serve`)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			if err := setLogLevel(cfg); err != nil {
				return err
			}
			vmid := strings.TrimSuffix(strings.TrimPrefix(args[0], cfg.StateDir+"/"+statedir.PoolDirName+"/"), "/")
			dir, err := statedir.NewPool(cfg.StateDir, vmid)
			if err != nil {
				return err
			}
			if dir.Path()+"/" != args[0] {
				return fmt.Errorf("%s is not a pool VM directory of state_dir %s", args[0], cfg.StateDir)
			}
			f := os.NewFile(3, "pool-owner")
			c, err := net.FileConn(f)
			_ = f.Close()
			if err != nil {
				return fmt.Errorf("owner connection (fd 3): %w", err)
			}
			uc, ok := c.(*net.UnixConn)
			if !ok {
				return fmt.Errorf("fd 3 is not a Unix socket")
			}
			ctx := log.WithLogger(cmd.Context(), log.G(cmd.Context()).WithField("pid", os.Getpid()))
			return pool.Keep(ctx, cfg, dir, uc)
		},
	}
}

type poolLsOptions struct {
	json bool
}

func newPoolLsCommand(g *globalOptions) *cobra.Command {
	var opts poolLsOptions
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the warm pool's VMs (booting or ready)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			st, err := pool.List(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if opts.json {
				return writeJSON(cmd.OutOrStdout(), st)
			}
			t := newTable(cmd.OutOrStdout(), "VM", "STATE", "AGE", "BOOT", "KEEPER")
			for _, v := range st.VMs {
				boot := "-"
				if v.BootSecs > 0 {
					boot = fmt.Sprintf("%.2fs", v.BootSecs)
				}
				t.row(v.ID, v.State, time.Since(v.Since).Round(time.Second).String(), boot, fmt.Sprint(v.KeeperPid))
			}
			if err := t.flush(); err != nil {
				return err
			}
			ready := 0
			for _, v := range st.VMs {
				if v.State == "ready" {
					ready++
				}
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "\n%d of %d ready; %d failed boots", ready, st.Size, st.Failures)
			if err == nil && st.LastError != "" {
				_, err = fmt.Fprintf(cmd.OutOrStdout(), " (last: %s)", firstLine(st.LastError))
			}
			if err == nil {
				_, err = fmt.Fprintln(cmd.OutOrStdout())
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

func setLogLevel(cfg *config.Config) error {
	if cfg.LogLevel == "" {
		return nil
	}
	return log.SetLevel(cfg.LogLevel)
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}
