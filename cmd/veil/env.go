package main

import (
	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/hostcheck"
	"github.com/veil-runtime/veil/runtime/inspect"
)

// env is what the commands reach outside the process; tests point it at
// temporary trees and fakes.
type env struct {
	// host is where `veil check` looks.
	host hostcheck.Host
	// procRoot is the host's /proc, for sandbox inspection.
	procRoot string
	// dial connects to a sandbox's agent.
	dial inspect.DialFunc
}

func defaultEnv() *env {
	return &env{host: hostcheck.LocalHost(), procRoot: "/proc", dial: inspect.DialAgent}
}

// loadConfig loads the config file the flags, $VEIL_CONFIG or the default
// path name.
func (g *globalOptions) loadConfig() (*config.Config, error) {
	return config.Load(config.Path(g.configPath))
}

// reader reads the sandboxes of the loaded config.
func (g *globalOptions) reader(e *env) (*inspect.Reader, error) {
	cfg, err := g.loadConfig()
	if err != nil {
		return nil, err
	}
	return &inspect.Reader{StateDir: cfg.StateDir, ProcRoot: e.procRoot}, nil
}
