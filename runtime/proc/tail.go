package proc

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// tailBytes bounds how much of a log file Tail reads.
const tailBytes = 8 << 10

// Tail returns at most the last n lines of the file at path (a note when
// it cannot be read), for error messages.
func Tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	off := st.Size() - tailBytes
	if off < 0 {
		off = 0
	}
	b, err := io.ReadAll(io.NewSectionReader(f, off, tailBytes))
	if err != nil {
		return fmt.Sprintf("(log unreadable: %v)", err)
	}
	b = bytes.TrimRight(b, "\n")
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(b) == 0 {
		return "(log empty)"
	}
	return string(bytes.Join(lines, []byte("\n")))
}
