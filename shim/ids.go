package shim

import (
	"fmt"
	"strings"
)

// maxIDLength bounds the ids the shim accepts. containerd's own ids are
// at most 76 characters and CRI's are 64 hex digits; the bound leaves room
// and keeps paths built from ids well within PATH_MAX.
const maxIDLength = 128

// validateID checks an id that the shim joins into host paths (container
// and sandbox ids) or hands to the guest (exec ids): it must be a single,
// non-empty path element of reasonable length. kind names the id in the
// error ("container id", "exec id", ...), which is classed InvalidArgument.
func validateID(kind, id string) error {
	why := ""
	switch {
	case id == "":
		why = "it is empty"
	case id == "." || id == "..":
		why = "it is a relative path element"
	case strings.ContainsRune(id, '/'):
		why = "it contains '/'"
	case strings.ContainsRune(id, 0):
		why = "it contains a NUL byte"
	case len(id) > maxIDLength:
		why = fmt.Sprintf("it is longer than %d bytes", maxIDLength)
	default:
		return nil
	}
	return invalidArgument{fmt.Errorf("invalid %s %q: %s", kind, id, why)}
}
