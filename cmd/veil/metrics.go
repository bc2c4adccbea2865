package main

import (
	"fmt"
	"io"
	"sort"

	"github.com/spf13/cobra"

	"github.com/veil-runtime/veil/runtime/inspect"
)

type metricsOptions struct {
	json bool
}

func newSandboxMetricsCommand(g *globalOptions, e *env) *cobra.Command {
	var opts metricsOptions
	cmd := &cobra.Command{
		Use:   "metrics ID",
		Short: "Print a sandbox's resource use: host helpers, guest, containers, VMM counters",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := g.reader(e)
			if err != nil {
				return err
			}
			m, err := r.Metrics(cmd.Context(), args[0], e.dial)
			if err != nil {
				return err
			}
			if opts.json {
				return writeJSON(cmd.OutOrStdout(), m)
			}
			return printMetrics(cmd.OutOrStdout(), m)
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON")
	return cmd
}

func printMetrics(w io.Writer, m inspect.Metrics) error {
	_, _ = fmt.Fprintf(w, "HOST (sandbox %s, %s)\n", m.ID, orDash(m.Hypervisor))
	t := newTable(w, "PROCESS", "PID", "RSS", "USER CPU", "SYS CPU", "THREADS")
	for _, h := range m.Host {
		if h.Usage == nil {
			t.row(h.Name, h.Pid, "-", "-", "-", h.Error)
			continue
		}
		t.row(h.Name, h.Pid, humanBytes(h.Usage.RSSBytes), h.Usage.UserTime, h.Usage.SystemTime, h.Usage.Threads)
	}
	if err := t.flush(); err != nil {
		return err
	}
	_, _ = fmt.Fprintln(w, "\nGUEST")
	if g := m.Guest; g != nil {
		_, _ = fmt.Fprintf(w, "memory:  %s available of %s\n", humanBytes(g.MemoryAvailableBytes), humanBytes(g.MemoryTotalBytes))
		if c := g.Cpu; c != nil {
			_, _ = fmt.Fprintf(w, "cpu:     %d online; user %.2fs system %.2fs idle %.2fs iowait %.2fs steal %.2fs\n", c.Online,
				sec(c.UserUsec), sec(c.SystemUsec), sec(c.IdleUsec), sec(c.IowaitUsec), sec(c.StealUsec))
		}
		_, _ = fmt.Fprintf(w, "load:    %.2f %.2f %.2f\nuptime:  %.1fs\n", g.Load1, g.Load5, g.Load15, g.UptimeSeconds)
		if len(g.Containers) > 0 {
			_, _ = fmt.Fprintln(w)
			t := newTable(w, "CONTAINER", "CPU", "MEMORY", "LIMIT", "PIDS", "EXECS", "ERROR")
			for _, c := range g.Containers {
				limit := "max"
				if c.MemoryLimitBytes > 0 {
					limit = humanBytes(c.MemoryLimitBytes)
				}
				t.row(c.ContainerId, fmt.Sprintf("%.2fs", sec(c.CpuUsageUsec)), humanBytes(c.MemoryCurrentBytes), limit, c.PidsCurrent, c.ExecRecords, orDash(c.Error))
			}
			if err := t.flush(); err != nil {
				return err
			}
		}
	} else {
		_, _ = fmt.Fprintf(w, "unavailable: %s\n", m.GuestError)
	}
	_, _ = fmt.Fprintln(w, "\nVMM COUNTERS")
	if m.CountersError != "" {
		_, err := fmt.Fprintln(w, m.CountersError)
		return err
	}
	devs := make([]string, 0, len(m.Counters))
	for d := range m.Counters {
		devs = append(devs, d)
	}
	sort.Strings(devs)
	t = newTable(w, "DEVICE", "COUNTER", "VALUE")
	for _, d := range devs {
		names := make([]string, 0, len(m.Counters[d]))
		for n := range m.Counters[d] {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			t.row(d, n, m.Counters[d][n])
		}
	}
	return t.flush()
}

func sec(usec uint64) float64 { return float64(usec) / 1e6 }
