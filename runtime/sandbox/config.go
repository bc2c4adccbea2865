package sandbox

import "github.com/veil-runtime/veil/runtime/config"

// Config is the configuration the sandbox was started with (after
// annotations). Callers must not modify it.
func (s *Sandbox) Config() *config.Config { return s.cfg }
