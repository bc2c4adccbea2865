package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// followInterval paces Follow's checks for new output and rotations.
const followInterval = 200 * time.Millisecond

// Follow writes the kept console at path to w, escaped (see Escaper), and
// then what the guest goes on writing, across the Log's rotations, until
// ctx ends or the directory holding path is removed (both return nil).
// The kept console is bounded as Read bounds it; a follower that falls
// more than two rotations behind (a flood within followInterval) skips
// what it missed. A path that does not exist yet is waited for.
func Follow(ctx context.Context, path string, w io.Writer) error {
	e := NewEscaper(w)
	err := follow(ctx, path, e)
	if ferr := e.Flush(); err == nil {
		err = ferr
	}
	return err
}

func follow(ctx context.Context, path string, w io.Writer) error {
	// What is kept, opened as Read does (path first), bounded.
	f, err := openRegular(path)
	if err != nil {
		return err
	}
	defer func() {
		if f != nil {
			_ = f.Close()
		}
	}()
	old, err := openRegular(path + rotatedSuffix)
	if err != nil {
		return err
	}
	if old != nil {
		if f == nil || !sameFile(f, old) {
			err = copyTail(w, old, MaxRead/2)
		}
		_ = old.Close()
		if err != nil {
			return err
		}
	}
	if err := copyTail(w, f, MaxRead/2); err != nil {
		return err
	}

	t := time.NewTicker(followInterval)
	defer t.Stop()
	for {
		if f == nil {
			if f, err = openRegular(path); err != nil {
				return err
			}
		}
		if f != nil {
			if _, err := io.Copy(w, f); err != nil {
				return fmt.Errorf("console: %w", err)
			}
			rotated, err := finishRotated(w, path, f)
			if err != nil {
				return err
			}
			if rotated {
				_ = f.Close()
				f = nil
				continue
			}
		}
		if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
			if _, err := os.Lstat(filepath.Dir(path)); errors.Is(err, os.ErrNotExist) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// finishRotated reports whether path is no longer f, that is the Log
// rotated since f was opened. Then it first copies what f got before the
// rotation and, when the Log rotated again since (f is no longer
// path+".1"), the newer half in between. When f is still path but
// shorter than what was read (path was created anew), it reads f again
// from its start.
func finishRotated(w io.Writer, path string, f *os.File) (bool, error) {
	cur, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil // between a rotation and the new file, or gone
	}
	if err != nil {
		return false, fmt.Errorf("console: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("console: %w", err)
	}
	if os.SameFile(st, cur) {
		if pos, err := f.Seek(0, io.SeekCurrent); err == nil && st.Size() < pos {
			_, err = f.Seek(0, io.SeekStart)
			return false, err
		}
		return false, nil
	}
	if _, err := io.Copy(w, f); err != nil {
		return false, fmt.Errorf("console: %w", err)
	}
	old, err := openRegular(path + rotatedSuffix)
	if err != nil || old == nil {
		return true, err
	}
	defer func() { _ = old.Close() }()
	if sameFile(f, old) {
		return true, nil
	}
	return true, copyTail(w, old, MaxRead/2)
}
