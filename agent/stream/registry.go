package stream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"

	"github.com/veil-runtime/veil/agent/api"
)

// DefaultUnclaimedTTL is how long a connection may wait for its process
// before the registry closes it.
const DefaultUnclaimedTTL = 5 * time.Minute

// Key names one stream of one process: ExecID is empty for a container's
// init process.
type Key struct {
	ContainerID string
	ExecID      string
	Stream      api.Stream
}

func (k Key) String() string {
	if k.ExecID == "" {
		return fmt.Sprintf("%s stream of container %s", k.Stream, k.ContainerID)
	}
	return fmt.Sprintf("%s stream of exec %s in container %s", k.Stream, k.ExecID, k.ContainerID)
}

// KeyOf returns the key a header names.
func KeyOf(h api.StreamHeader) Key {
	return Key{ContainerID: h.ContainerID, ExecID: h.ExecID, Stream: h.Stream}
}

// pending is a connection that arrived and waits for its process.
type pending struct {
	conn   net.Conn
	expire *time.Timer
}

// Registry pairs arriving stream connections with the processes that claim
// them. The zero value is not usable; use NewRegistry.
type Registry struct {
	ttl time.Duration

	mu      sync.Mutex
	conns   map[Key]*pending
	waiters map[Key]chan struct{}
	closed  bool
}

// NewRegistry returns an empty registry whose unclaimed connections are
// closed after ttl.
func NewRegistry(ttl time.Duration) *Registry {
	if ttl <= 0 {
		ttl = DefaultUnclaimedTTL
	}
	return &Registry{ttl: ttl, conns: map[Key]*pending{}, waiters: map[Key]chan struct{}{}}
}

// Add registers conn under key. The newest connection wins: one that
// still waits under key is closed and replaced, since it is left over from
// a request that failed or was retried (a retry's process must get the
// connection the host opened for it, not an older, possibly dead one).
func (r *Registry) Add(key Key, conn net.Conn) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return fmt.Errorf("register %s: registry closed: %w", key, errdefs.ErrUnavailable)
	}
	old := r.conns[key]
	p := &pending{conn: conn}
	p.expire = time.AfterFunc(r.ttl, func() { r.expire(key, p) })
	r.conns[key] = p
	if w, ok := r.waiters[key]; ok {
		close(w)
		delete(r.waiters, key)
	}
	r.mu.Unlock()
	if old != nil {
		old.expire.Stop()
		log.L.WithField("stream", key.String()).Warn("closing unclaimed stream connection replaced by a newer one")
		_ = old.conn.Close()
	}
	return nil
}

// expire closes a connection nobody claimed in time.
func (r *Registry) expire(key Key, p *pending) {
	r.mu.Lock()
	cur, ok := r.conns[key]
	if ok && cur == p {
		delete(r.conns, key)
	}
	r.mu.Unlock()
	if ok && cur == p {
		log.L.WithField("stream", key.String()).Warnf("closing stream connection unclaimed after %s", r.ttl)
		_ = p.conn.Close()
	}
}

// Take returns the connection for key, waiting until it arrives or ctx
// ends. The caller owns the returned connection.
func (r *Registry) Take(ctx context.Context, key Key) (net.Conn, error) {
	for {
		r.mu.Lock()
		if p, ok := r.conns[key]; ok {
			delete(r.conns, key)
			r.mu.Unlock()
			p.expire.Stop()
			return p.conn, nil
		}
		if r.closed {
			r.mu.Unlock()
			return nil, fmt.Errorf("wait for %s: registry closed: %w", key, errdefs.ErrUnavailable)
		}
		w, ok := r.waiters[key]
		if !ok {
			w = make(chan struct{})
			r.waiters[key] = w
		}
		r.mu.Unlock()

		select {
		case <-w:
		case <-ctx.Done():
			r.mu.Lock()
			if r.waiters[key] == w {
				delete(r.waiters, key)
			}
			r.mu.Unlock()
			return nil, fmt.Errorf("%s did not connect to vsock port %d: %w (%w)", key, api.StreamPort, errdefs.ErrFailedPrecondition, context.Cause(ctx))
		}
	}
}

// Discard closes every waiting connection of the process (containerID,
// execID); with an empty execID and all set, those of every process of the
// container.
func (r *Registry) Discard(containerID, execID string, all bool) {
	r.mu.Lock()
	var drop []*pending
	for k, p := range r.conns {
		if k.ContainerID == containerID && (all || k.ExecID == execID) {
			drop = append(drop, p)
			delete(r.conns, k)
		}
	}
	r.mu.Unlock()
	for _, p := range drop {
		p.expire.Stop()
		_ = p.conn.Close()
	}
}

// Close closes every waiting connection and fails current and later Takes.
func (r *Registry) Close() {
	r.mu.Lock()
	r.closed = true
	conns := r.conns
	r.conns = map[Key]*pending{}
	for k, w := range r.waiters {
		close(w)
		delete(r.waiters, k)
	}
	r.mu.Unlock()
	for _, p := range conns {
		p.expire.Stop()
		_ = p.conn.Close()
	}
}

// ErrBadHeader marks a connection whose preamble could not be read.
var ErrBadHeader = errors.New("bad stream header")
