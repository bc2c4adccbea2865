package config

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// Monitor configures `veil monitor`, the node's Prometheus exporter
// (runtime/monitor).
type Monitor struct {
	// Listen is the TCP address /metrics is served on.
	Listen string `toml:"listen"`
	// SandboxTimeout bounds the gathering of one sandbox's figures per
	// scrape; a sandbox past it counts as a failed scrape.
	SandboxTimeout Duration `toml:"sandbox_timeout"`
	// Concurrency bounds the sandboxes gathered at once.
	Concurrency int `toml:"concurrency"`
}

// DefaultMonitorListen is where `veil monitor` serves unless
// monitor.listen says otherwise: loopback only.
const DefaultMonitorListen = "127.0.0.1:9720"

func defaultMonitor() Monitor {
	return Monitor{
		Listen:         DefaultMonitorListen,
		SandboxTimeout: Duration{2 * time.Second},
		Concurrency:    8,
	}
}

func (m Monitor) validate() error {
	if _, _, err := net.SplitHostPort(m.Listen); err != nil {
		return fmt.Errorf("monitor.listen: %q is not host:port: %w", m.Listen, err)
	}
	if m.SandboxTimeout.Duration <= 0 {
		return errors.New("monitor.sandbox_timeout: must be positive")
	}
	if m.Concurrency < 1 || m.Concurrency > 64 {
		return fmt.Errorf("monitor.concurrency: %d is not within 1..64", m.Concurrency)
	}
	return nil
}
