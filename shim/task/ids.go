package task

import "github.com/veil-runtime/veil/agent/api"

// validateID checks an id that the shim joins into host paths (container
// and sandbox ids) or hands to the guest (exec ids) with the one rule the
// runtime and the agent share (api.ValidateID). kind names the id in the
// error, which is classed InvalidArgument.
func validateID(kind, id string) error { return api.ValidateID(kind, id) }
