package container

import (
	"fmt"
	"path/filepath"

	"github.com/containerd/errdefs"
)

// validateID accepts what libcontainer accepts: letters, digits, _ + - .
func validateID(id string) error {
	if id == "" || id == "." || id == ".." || filepath.Base(id) != id {
		return fmt.Errorf("container id %q: %w", id, errdefs.ErrInvalidArgument)
	}
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '+' || r == '-' || r == '.'
		if !ok {
			return fmt.Errorf("container id %q: only letters, digits and _+-. are allowed: %w", id, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}
