package container

import "github.com/veil-runtime/veil/agent/api"

// validateID applies the id rule the host and the guest share
// (api.ValidateID) to a container id.
func validateID(id string) error { return api.ValidateID("container id", id) }
