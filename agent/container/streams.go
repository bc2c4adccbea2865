package container

import (
	"context"
	"fmt"
	"net"

	"github.com/veil-runtime/veil/agent/api"
	"github.com/veil-runtime/veil/agent/stream"
)

// StreamSource hands out the stdio connections the host opened.
type StreamSource interface {
	// Take returns the connection for key, waiting until it arrives or
	// ctx ends; the caller owns it.
	Take(ctx context.Context, key stream.Key) (net.Conn, error)
	// Discard closes the waiting connections of process (containerID,
	// execID), or of every process of the container when all is set.
	Discard(containerID, execID string, all bool)
}

// Stdio says which streams a process has.
type Stdio struct {
	Stdin, Stdout, Stderr, Terminal bool
}

// takeStreams waits (bounded) for every stream sio names; on failure the
// ones taken are closed and the rest discarded.
func (m *Manager) takeStreams(ctx context.Context, id, execID string, sio Stdio) (_ streams, retErr error) {
	var s streams
	ctx, cancel := context.WithTimeoutCause(ctx, m.cfg.StreamTimeout, fmt.Errorf("no connection within %s", m.cfg.StreamTimeout))
	defer cancel()
	defer func() {
		if retErr != nil {
			s.closeAll()
			m.streams.Discard(id, execID, false)
		}
	}()
	want := []struct {
		on   bool
		name api.Stream
		dst  *net.Conn
	}{
		{sio.Stdin, api.StreamStdin, &s.stdin},
		{sio.Stdout, api.StreamStdout, &s.stdout},
		{sio.Stderr, api.StreamStderr, &s.stderr},
	}
	for _, w := range want {
		if !w.on {
			continue
		}
		conn, err := m.streams.Take(ctx, stream.Key{ContainerID: id, ExecID: execID, Stream: w.name})
		if err != nil {
			return s, err
		}
		*w.dst = conn
	}
	return s, nil
}

// discardStreamsOnError closes the pending stream connections of process
// (id, execID) when *errp is set: a failed Create or Exec must not leave
// them to wait out the registry's TTL (holding the host's copy open) or to
// be handed to a retry. Connections under a key that another in-flight
// Create or Exec reserved are that request's and stay. Deferred first, so
// it runs after the failed request dropped its own reservation.
func (m *Manager) discardStreamsOnError(errp *error, id, execID string) {
	if *errp != nil && !m.reserved(id, execID) {
		m.streams.Discard(id, execID, false)
	}
}

// reserved reports whether an in-flight Create (empty execID) or Exec
// holds the process (id, execID).
func (m *Manager) reserved(id, execID string) bool {
	m.mu.Lock()
	c, ok := m.containers[id]
	creating := ok && c.creating
	m.mu.Unlock()
	if !ok || execID == "" || creating {
		// A container being created has no execs (and its c.mu is held
		// for the whole create).
		return creating && execID == ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.execs[execID]
	return ok && p == nil
}
