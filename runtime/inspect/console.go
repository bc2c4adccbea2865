package inspect

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/veil-runtime/veil/runtime/console"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// Console writes sandbox id's kept console to w (the rotated half, then
// the current one; see runtime/console), escaped for a terminal with
// console.Escape. With follow it goes on printing what the guest writes,
// across rotations, until ctx ends or the sandbox directory goes.
func (r *Reader) Console(ctx context.Context, id string, w io.Writer, follow bool) error {
	dir, err := r.Dir(id)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, statedir.ConsoleLog)
	if follow {
		if err := console.Follow(ctx, path, w); err != nil {
			return fmt.Errorf("sandbox %s: %w", id, err)
		}
		return nil
	}
	b, err := console.Read(path)
	if err != nil {
		return fmt.Errorf("sandbox %s: %w", id, err)
	}
	_, err = io.WriteString(w, console.Escape(b))
	return err
}
