package api

import (
	"fmt"

	"github.com/containerd/containerd/v2/pkg/identifiers"
)

// ValidateID is the one rule for the ids the host and the guest share:
// sandbox, container and exec ids. It is containerd's identifier rule
// (letters and digits, separated by single '.', '_' or '-', at most 76
// characters), so every id containerd accepts passes and every id that
// passes is a single, safe path element on both sides. kind names the id
// in the error ("container id", ...), which wraps errdefs.ErrInvalidArgument.
// The host also checks that the paths a sandbox id leads to fit (see
// runtime/statedir).
func ValidateID(kind, id string) error {
	if err := identifiers.Validate(id); err != nil {
		return fmt.Errorf("invalid %s %q: %w", kind, id, err)
	}
	return nil
}
