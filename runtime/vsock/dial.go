package vsock

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/veil-runtime/veil/runtime/statedir"
)

// maxReply bounds the reply line so a broken peer cannot make us read
// without limit.
const maxReply = 128

// Dial connects to guest port through the hybrid vsock Unix socket at
// socketPath. It returns a *net.UnixConn (so CloseWrite works) that carries
// only the guest stream's bytes. The context bounds the whole handshake.
func Dial(ctx context.Context, socketPath string, port uint32) (*net.UnixConn, error) {
	// The socket lies in the directory of a jailed helper, which could
	// put a link to another socket in its place: DialUnix follows none.
	conn, err := statedir.DialUnix(ctx, socketPath)
	if err != nil {
		return nil, fmt.Errorf("vsock port %d: dial %s: %w", port, socketPath, err)
	}
	if err := handshake(ctx, conn, port); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("vsock port %d via %s: %w", port, socketPath, err)
	}
	return conn, nil
}

// handshake writes the CONNECT line and reads the reply byte by byte, so
// no byte of the guest's stream is consumed with it.
func handshake(ctx context.Context, conn *net.UnixConn, port uint32) error {
	deadline, hasDeadline := ctx.Deadline()
	if hasDeadline {
		if err := conn.SetDeadline(deadline); err != nil {
			return err
		}
	}
	// A cancel without deadline interrupts blocking I/O by moving the
	// deadline into the past.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if _, err := fmt.Fprintf(conn, "CONNECT %d\n", port); err != nil {
		return ctxErr(ctx, fmt.Errorf("write CONNECT: %w", err))
	}
	line, err := readLine(conn)
	if err != nil {
		return ctxErr(ctx, fmt.Errorf("read CONNECT reply: %w", err))
	}
	if line != "OK" && !strings.HasPrefix(line, "OK ") {
		return fmt.Errorf("CONNECT refused: reply %q", line)
	}
	if !stop() {
		// The cancel fired while we finished: the conn's deadline is broken.
		return ctx.Err()
	}
	return conn.SetDeadline(time.Time{})
}

func readLine(conn *net.UnixConn) (string, error) {
	var buf []byte
	b := make([]byte, 1)
	for len(buf) < maxReply {
		n, err := conn.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				return string(buf), nil
			}
			buf = append(buf, b[0])
			continue
		}
		if err != nil {
			if len(buf) > 0 {
				return "", fmt.Errorf("%w after %q", err, buf)
			}
			return "", err
		}
	}
	return "", fmt.Errorf("reply longer than %d bytes: %q", maxReply, buf)
}

// ctxErr adds the context's error when the context ended the I/O. The
// conn's deadline (copied from the context) can expire a moment before the
// context itself reports it.
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return errors.Join(cerr, err)
	}
	if _, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) {
		return errors.Join(context.DeadlineExceeded, err)
	}
	return err
}
