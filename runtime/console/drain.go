package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// drainBuffer is the size of Drain's reads.
const drainBuffer = 32 << 10

// Drain copies r into l until r ends or ctx ends. A failed write does not
// stop it: it keeps reading (and tries to write again with the next
// read), so the VMM on the other side never blocks on a full console.
// Writes after Close are discarded silently.
//
// It returns nil at EOF when every write succeeded, else the first write
// error; ctx's error when ctx ended (a blocked read is interrupted when r
// has SetReadDeadline, as a net.Conn or a pipe's *os.File does); or the
// read error that ended it.
func (l *Log) Drain(ctx context.Context, r io.Reader) error {
	if d, ok := r.(interface{ SetReadDeadline(time.Time) error }); ok {
		stop := context.AfterFunc(ctx, func() { _ = d.SetReadDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	buf := make([]byte, drainBuffer)
	var werr error
	for {
		if err := ctx.Err(); err != nil {
			return errors.Join(err, werr)
		}
		n, rerr := r.Read(buf)
		if n > 0 {
			if _, err := l.Write(buf[:n]); err != nil && !errors.Is(err, os.ErrClosed) && werr == nil {
				werr = err
			}
		}
		switch {
		case rerr == nil:
		case errors.Is(rerr, io.EOF):
			return werr
		case ctx.Err() != nil:
			return errors.Join(ctx.Err(), werr)
		default:
			return errors.Join(fmt.Errorf("console: read: %w", rerr), werr)
		}
	}
}
