package statedir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// StartsFile is the node's journal of sandbox starts in state_dir: one
// JSON line per start attempt, warm or cold, that worked or failed,
// appended by the shims and read by `veil monitor`, so that a start that
// failed (whose sandbox directory and shim are gone) is still counted.
// Past maxStartsFile it is renamed to StartsFile + ".1" (the previous
// one dropped) and begun anew.
const StartsFile = ".starts"

const (
	maxStartsFile  = 1 << 20
	maxStartRecord = 4096
)

// StartRecord is one start attempt.
type StartRecord struct {
	Sandbox string `json:"sandbox"`
	// Mode is "warm" (a pool VM taken over) or "cold".
	Mode string `json:"mode"`
	OK   bool   `json:"ok"`
	// Step is the start step that failed.
	Step string `json:"step,omitempty"`
	// Seconds is how long the attempt took.
	Seconds float64 `json:"seconds"`
	// Stages are a successful start's stages, in order.
	Stages []StartStage `json:"stages,omitempty"`
}

// StartStage is one stage of a start.
type StartStage struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// AppendStart adds r to stateDir's journal in one write (appends of a
// few KiB do not interleave), rotating the journal when it grew past its
// bound.
func AppendStart(stateDir string, r StartRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("start journal: %w", err)
	}
	if len(b) >= maxStartRecord {
		r.Stages = nil
		if b, err = json.Marshal(r); err != nil {
			return fmt.Errorf("start journal: %w", err)
		}
	}
	path := filepath.Join(stateDir, StartsFile)
	// No link followed, and no wait on a FIFO put in its place.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		return fmt.Errorf("start journal: %w", err)
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("start journal: %w", err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("start journal %s is not a regular file", path)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("start journal: %w", err)
	}
	// Rotate past the bound, unless another shim already did: only the
	// file written to is renamed.
	if st, err := f.Stat(); err == nil && st.Size() > maxStartsFile {
		if cur, err := os.Lstat(path); err == nil && os.SameFile(st, cur) {
			_ = os.Rename(path, path+".1")
		}
	}
	return nil
}

// StartsReader follows a journal from where it was opened: each Read
// returns the records appended since the last one, across rotations.
type StartsReader struct {
	path string
	f    *os.File
	ino  uint64
	part []byte // an incomplete last line
}

// NewStartsReader follows stateDir's journal from its current end: only
// starts from now on are read.
func NewStartsReader(stateDir string) *StartsReader {
	r := &StartsReader{path: filepath.Join(stateDir, StartsFile)}
	if f, ino, err := r.open(); err == nil {
		if _, err := f.Seek(0, io.SeekEnd); err == nil {
			r.f, r.ino = f, ino
		} else {
			_ = f.Close()
		}
	}
	return r
}

func (r *StartsReader) open() (*os.File, uint64, error) {
	f, err := os.OpenFile(r.path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("start journal: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, 0, fmt.Errorf("start journal: %w", err)
	}
	if !st.Mode().IsRegular() {
		_ = f.Close()
		return nil, 0, fmt.Errorf("start journal %s is not a regular file", r.path)
	}
	return f, st.Sys().(*syscall.Stat_t).Ino, nil
}

// Read returns the records appended since the last Read (at most about
// maxStartsFile of them per call); malformed lines are skipped.
func (r *StartsReader) Read() ([]StartRecord, error) {
	var out []StartRecord
	if r.f != nil {
		out = append(out, r.drain()...)
	}
	// A rotation (or a first journal) is a new file: read it from its
	// start.
	st, err := os.Lstat(r.path)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("start journal: %w", err)
	}
	if ino := st.Sys().(*syscall.Stat_t).Ino; r.f == nil || ino != r.ino {
		f, ino, err := r.open()
		if err != nil {
			return out, err
		}
		if r.f != nil {
			_ = r.f.Close()
		}
		r.f, r.ino, r.part = f, ino, nil
		out = append(out, r.drain()...)
	}
	return out, nil
}

// drain reads what r.f has past its offset: at most twice the journal's
// bound, as much as a file that was rotated can hold.
func (r *StartsReader) drain() []StartRecord {
	b, _ := io.ReadAll(io.LimitReader(r.f, 2*maxStartsFile))
	b = append(r.part, b...)
	r.part = nil
	var out []StartRecord
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if len(b) < maxStartRecord {
				r.part = append([]byte(nil), b...)
			}
			break
		}
		var rec StartRecord
		if json.Unmarshal(b[:i], &rec) == nil {
			out = append(out, rec)
		}
		b = b[i+1:]
	}
	return out
}

// Close closes the journal.
func (r *StartsReader) Close() error {
	if r.f == nil {
		return nil
	}
	return r.f.Close()
}
