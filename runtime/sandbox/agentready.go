package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/log"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// readLineTimeout bounds the read of one notification line.
const readLineTimeout = 2 * time.Second

// readyListener receives the agent's ready notification: the guest's
// connection to host vsock port api.ReadyPort, which a hybrid vsock
// socket S delivers to the Unix socket S_<port>.
type readyListener struct {
	l     *net.UnixListener
	path  string
	ready chan struct{}
}

// listenReady listens on the ready socket of the hybrid vsock socket at
// vsockPath and accepts connections until one carries api.ReadyMessage.
func listenReady(ctx context.Context, vsockPath string, uid uint32) (*readyListener, error) {
	path := filepath.Join(filepath.Dir(vsockPath), filepath.Base(statedir.ReadySocket))
	l, err := statedir.ListenUnix(path, uid, uid)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	r := &readyListener{l: l, path: path, ready: make(chan struct{})}
	go r.accept(ctx)
	return r, nil
}

// Ready is closed once the agent said it serves.
func (r *readyListener) Ready() <-chan struct{} { return r.ready }

// Close stops listening and removes the socket.
func (r *readyListener) Close() error {
	err := r.l.Close()
	if rerr := os.Remove(r.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
		err = rerr
	}
	return err
}

func (r *readyListener) accept(ctx context.Context) {
	lg := log.G(ctx)
	for {
		conn, err := r.l.Accept()
		if err != nil {
			return // closed
		}
		ok, err := readReady(conn)
		_ = conn.Close()
		if ok {
			close(r.ready)
			return
		}
		lg.WithError(err).Warn("unexpected connection on the agent ready socket")
	}
}

func readReady(conn net.Conn) (bool, error) {
	if err := conn.SetReadDeadline(time.Now().Add(readLineTimeout)); err != nil {
		return false, err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return false, fmt.Errorf("read ready notification: %w", err)
	}
	if line != api.ReadyMessage {
		return false, fmt.Errorf("ready notification %q, want %q", line, api.ReadyMessage)
	}
	return true, nil
}
