package console

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// MaxRead bounds what Read returns (the newest bytes are kept): a Log
// keeps far less by default, but the bytes are the guest's and a file
// may be left over from elsewhere.
const MaxRead = 4 << 20

// tailMaxBytes bounds the console bytes Tail quotes, so that a guest
// writing one endless line cannot bloat an error message.
const tailMaxBytes = 4 << 10

// noOutput is what Tail says about an empty or missing console.
const noOutput = "(no console output)"

// openRegular opens p for reading without following a symlink or
// blocking on a FIFO, and only if it is a regular file. A missing file
// is (nil, nil).
func openRegular(p string) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("console: %w", err)
	}
	if !st.Mode().IsRegular() {
		_ = f.Close()
		return nil, fmt.Errorf("console: %s is not a regular file", p)
	}
	return f, nil
}

// copyTail copies at most the last limit bytes of f (from where it is
// at when longer) to w.
func copyTail(w io.Writer, f *os.File, limit int64) error {
	if f == nil || limit <= 0 {
		return nil
	}
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	pos, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	if st.Size()-pos > limit {
		if _, err := f.Seek(st.Size()-limit, io.SeekStart); err != nil {
			return fmt.Errorf("console: %w", err)
		}
	}
	if _, err := io.Copy(w, io.LimitReader(f, limit)); err != nil {
		return fmt.Errorf("console: %s: %w", f.Name(), err)
	}
	return nil
}

// Read returns the kept console: path+".1", then path; at most MaxRead
// bytes, the newest. Missing files read as empty. Read while a Log
// writes, it returns at worst less, never the same bytes twice.
func Read(path string) ([]byte, error) {
	// path first: if the Log rotates between the two opens, the old half
	// opened second is the file already open as path, and is skipped.
	cur, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	if cur != nil {
		defer func() { _ = cur.Close() }()
	}
	old, err := openRegular(path + rotatedSuffix)
	if err != nil {
		return nil, err
	}
	if old != nil {
		defer func(f *os.File) { _ = f.Close() }(old) // old may be set to nil below
		if cur != nil && sameFile(cur, old) {
			old = nil
		}
	}
	var newer, older bytes.Buffer
	if err := copyTail(&newer, cur, MaxRead); err != nil {
		return nil, err
	}
	if err := copyTail(&older, old, MaxRead-int64(newer.Len())); err != nil {
		return nil, err
	}
	return append(older.Bytes(), newer.Bytes()...), nil
}

func sameFile(a, b *os.File) bool {
	sa, err := a.Stat()
	if err != nil {
		return false
	}
	sb, err := b.Stat()
	return err == nil && os.SameFile(sa, sb)
}

// Tail returns the last n lines of the kept console (the rotated half
// included), escaped with Escape, for error messages: at most the last
// 4 KiB of them, marked with a leading "..." when cut inside a line. It
// says "(no console output)" when the console is empty or missing, and
// "(console: <error>)" when it cannot be read.
func Tail(path string, n int) string {
	b, err := Read(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	b = bytes.TrimRight(b, "\r\n")
	cut := false
	if len(b) > tailMaxBytes {
		b, cut = b[len(b)-tailMaxBytes:], true
		// Do not start inside a UTF-8 sequence.
		for i := 0; i < utf8.UTFMax && len(b) > 0 && !utf8.RuneStart(b[0]); i++ {
			b = b[1:]
		}
	}
	if len(b) == 0 {
		return noOutput
	}
	if n <= 0 {
		return ""
	}
	// The n-th newline from the end starts the last n lines.
	start, idx := 0, len(b)
	for i := 0; i < n && idx >= 0; i++ {
		idx = bytes.LastIndexByte(b[:idx], '\n')
	}
	if idx >= 0 {
		start, cut = idx+1, false
	}
	s := Escape(b[start:])
	if cut {
		s = "..." + s
	}
	return s
}
