package inspect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/veil-runtime/veil/runtime/statedir"
)

// followInterval paces the checks for new console output with --follow.
const followInterval = 200 * time.Millisecond

// Console copies the guest console log of sandbox id to w. With follow it
// keeps copying what the guest appends until ctx ends or the sandbox's
// directory goes away (the sandbox was stopped).
func (r *Reader) Console(ctx context.Context, id string, w io.Writer, follow bool) error {
	dir, err := r.Dir(id)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, statedir.ConsoleLog)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("sandbox %s: console: %w", id, err)
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("sandbox %s: console: %w", id, err)
	}
	if !follow {
		return nil
	}
	t := time.NewTicker(followInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if _, err := io.Copy(w, f); err != nil {
			return fmt.Errorf("sandbox %s: console: %w", id, err)
		}
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil
		}
	}
}
