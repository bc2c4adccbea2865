package console

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// rotatedSuffix names the older half of a Log.
const rotatedSuffix = ".1"

// MinMax is the smallest bound Create accepts (each half holds one byte).
const MinMax = 2

// Log is the host's bounded copy of a guest console: it writes path; when
// path reaches max/2 bytes it is renamed to path+".1" (replacing the
// older one) and a new path is started, so both together never exceed max
// bytes. It is safe for one writer and a concurrent Close.
type Log struct {
	path string
	half int64

	mu     sync.Mutex
	f      *os.File // the current half; nil after a failed rotation or Close
	size   int64    // bytes in f
	closed bool
}

// Create starts a Log at path bounded by max bytes: it creates or
// truncates path (mode 0640, never through a symlink) and removes a stale
// path+".1".
func Create(path string, max int64) (*Log, error) {
	if max < MinMax {
		return nil, fmt.Errorf("console: bound of %d bytes is below %d", max, MinMax)
	}
	if err := os.Remove(path + rotatedSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("console: %w", err)
	}
	f, err := openNew(path)
	if err != nil {
		return nil, err
	}
	return &Log{path: path, half: max / 2, f: f}, nil
}

// Files lists the files a Log at path may have, for cleanup.
func Files(path string) []string { return []string{path, path + rotatedSuffix} }

func openNew(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o640)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	return f, nil
}

// Write appends p, rotating whenever the current half is full. Of a p
// larger than a half only its last max/2 bytes are kept. It reports
// len(p) written when everything to be kept was; after an error (a full
// disk, a removed directory) the next Write tries again.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, os.ErrClosed
	}
	n := len(p)
	if int64(len(p)) > l.half {
		p = p[int64(len(p))-l.half:]
	}
	for len(p) > 0 {
		if l.f == nil || l.size >= l.half {
			if err := l.rotate(); err != nil {
				return 0, err
			}
		}
		chunk := p
		if room := l.half - l.size; int64(len(chunk)) > room {
			chunk = chunk[:room]
		}
		w, err := l.f.Write(chunk)
		l.size += int64(w)
		if err != nil {
			return 0, fmt.Errorf("console: %w", err)
		}
		p = p[w:]
	}
	return n, nil
}

// rotate moves a full current half aside and starts a new one. After a
// failed rotation f is nil and the next one starts path afresh (its
// content is lost, the bound still holds).
func (l *Log) rotate() error {
	if l.f != nil {
		_ = l.f.Close()
		l.f = nil
		if err := os.Rename(l.path, l.path+rotatedSuffix); err != nil {
			return fmt.Errorf("console: rotate: %w", err)
		}
	}
	f, err := openNew(l.path)
	if err != nil {
		return err
	}
	l.f, l.size = f, 0
	return nil
}

// Close ends the log; later writes fail with os.ErrClosed. The files stay
// (for diagnostics) until the sandbox directory goes. Close is idempotent.
func (l *Log) Close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
