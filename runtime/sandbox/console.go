package sandbox

import (
	"bytes"
	"io"
	"os"
)

// agentServingMarker is what veil-agent logs on the guest console once its
// vsock listeners accept connections.
const agentServingMarker = "agent serving"

// consoleWatch finds a marker in a growing console log, reading only what
// was appended since the last call.
type consoleWatch struct {
	path   string
	marker []byte
	off    int64
	carry  []byte // tail of the last read, for a marker split across reads
}

// seen reports whether the marker has appeared in the log so far.
func (w *consoleWatch) seen() bool {
	f, err := os.Open(w.path)
	if err != nil {
		return false
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, w.off, 1<<30))
	if err != nil || len(b) == 0 {
		return false
	}
	w.off += int64(len(b))
	buf := append(w.carry, b...)
	if bytes.Contains(buf, w.marker) {
		return true
	}
	keep := len(w.marker) - 1
	if len(buf) < keep {
		keep = len(buf)
	}
	w.carry = append([]byte(nil), buf[len(buf)-keep:]...)
	return false
}
