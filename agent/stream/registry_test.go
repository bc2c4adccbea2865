package stream

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/veil-runtime/veil/agent/api"
)

// pair returns both ends of an in-memory connection, closed at cleanup.
func pair(t *testing.T) (host, guest net.Conn) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	return a, b
}

func TestRegistryTake(t *testing.T) {
	key := Key{ContainerID: "c1", ExecID: "e1", Stream: api.StreamStdout}
	cases := []struct {
		name string
		// addFirst adds before Take starts; otherwise Take waits first.
		addFirst bool
		addKey   Key
		timeout  time.Duration
		wantErr  error
	}{
		{name: "arrives before the claim", addFirst: true, addKey: key, timeout: time.Second},
		{name: "arrives after the claim", addFirst: false, addKey: key, timeout: 10 * time.Second},
		{name: "never arrives", addFirst: true, addKey: Key{ContainerID: "other", Stream: api.StreamStdout}, timeout: 20 * time.Millisecond, wantErr: errdefs.ErrFailedPrecondition},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRegistry(time.Minute)
			defer r.Close()
			_, g := pair(t)
			if tc.addFirst {
				if err := r.Add(tc.addKey, g); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
			defer cancel()
			type result struct {
				c   net.Conn
				err error
			}
			got := make(chan result, 1)
			go func() {
				c, err := r.Take(ctx, key)
				got <- result{c, err}
			}()
			if !tc.addFirst {
				waitForWaiter(t, r, key)
				if err := r.Add(tc.addKey, g); err != nil {
					t.Fatal(err)
				}
			}
			res := <-got
			if tc.wantErr != nil {
				if !errors.Is(res.err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", res.err, tc.wantErr)
				}
				if !strings.Contains(res.err.Error(), "stdout stream of exec e1 in container c1") {
					t.Fatalf("error does not name the stream: %v", res.err)
				}
				return
			}
			if res.err != nil || res.c != g {
				t.Fatalf("Take = %v, %v; want the added conn", res.c, res.err)
			}
		})
	}
}

// waitForWaiter blocks until a Take for key is registered.
func waitForWaiter(t *testing.T, r *Registry, key Key) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		_, ok := r.waiters[key]
		r.mu.Unlock()
		if ok {
			return
		}
		time.Sleep(time.Millisecond) // polling a condition, not synchronising on time
	}
	t.Fatal("Take never started waiting")
}

func TestRegistryNewestWins(t *testing.T) {
	key := Key{ContainerID: "c1", ExecID: "e1", Stream: api.StreamStdin}
	cases := []struct {
		name string
		// takeFirst claims the first connection before the second arrives.
		takeFirst bool
		// discardFirst discards the process's streams (a failed request)
		// before the second arrives.
		discardFirst bool
		// wantFirstClosed says the registry closed the first connection.
		wantFirstClosed bool
	}{
		{name: "unclaimed older connection is replaced and closed", wantFirstClosed: true},
		{name: "claimed older connection is left to its owner", takeFirst: true},
		{name: "retry after a discarded request gets the new connection", discardFirst: true, wantFirstClosed: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRegistry(time.Minute)
			defer r.Close()
			h1, g1 := pair(t)
			_, g2 := pair(t)
			if err := r.Add(key, g1); err != nil {
				t.Fatal(err)
			}
			if tc.takeFirst {
				if c, err := r.Take(context.Background(), key); err != nil || c != g1 {
					t.Fatalf("first Take = %v, %v; want the first conn", c, err)
				}
			}
			if tc.discardFirst {
				r.Discard(key.ContainerID, key.ExecID, false)
			}
			if err := r.Add(key, g2); err != nil {
				t.Fatalf("second Add = %v, want it accepted", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if c, err := r.Take(ctx, key); err != nil || c != g2 {
				t.Fatalf("Take = %v, %v; want the second conn", c, err)
			}
			// A closed guest end gives the host end EOF; an open one
			// blocks until the deadline.
			_ = h1.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			_, err := h1.Read(make([]byte, 1))
			closed := err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
			if closed != tc.wantFirstClosed {
				t.Fatalf("first conn closed = %v (read: %v), want %v", closed, err, tc.wantFirstClosed)
			}
		})
	}
}

func TestRegistryExpiresAndDiscards(t *testing.T) {
	cases := []struct {
		name string
		ttl  time.Duration
		act  func(r *Registry)
	}{
		{name: "unclaimed connection expires", ttl: 10 * time.Millisecond, act: func(*Registry) {}},
		{name: "discard closes the process's connections", ttl: time.Minute, act: func(r *Registry) { r.Discard("c1", "", true) }},
		{name: "close closes everything", ttl: time.Minute, act: func(r *Registry) { r.Close() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRegistry(tc.ttl)
			defer r.Close()
			h, g := pair(t)
			if err := r.Add(Key{ContainerID: "c1", ExecID: "e", Stream: api.StreamStdout}, g); err != nil {
				t.Fatal(err)
			}
			tc.act(r)
			// The host end sees EOF once the guest end is closed.
			_ = h.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := h.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("host end read = %v, want closed", err)
			}
		})
	}
}

func TestAccept(t *testing.T) {
	cases := []struct {
		name    string
		preface string
		wantKey Key
		wantErr bool
	}{
		{name: "valid header", preface: `{"container_id":"c1","stream":"stderr"}` + "\n", wantKey: Key{ContainerID: "c1", Stream: api.StreamStderr}},
		{name: "exec header", preface: `{"container_id":"c1","exec_id":"x","stream":"stdin"}` + "\n", wantKey: Key{ContainerID: "c1", ExecID: "x", Stream: api.StreamStdin}},
		{name: "not json", preface: "hello\n", wantErr: true},
		{name: "unknown stream", preface: `{"container_id":"c1","stream":"stdfoo"}` + "\n", wantErr: true},
		{name: "no container", preface: `{"stream":"stdout"}` + "\n", wantErr: true},
		{name: "eof before newline", preface: `{"container_id":"c1"`, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRegistry(time.Minute)
			defer r.Close()
			h, g := pair(t)
			go func() {
				_, _ = h.Write([]byte(tc.preface))
				_, _ = h.Write([]byte("payload"))
				_ = h.Close()
			}()
			err := Accept(g, r)
			if tc.wantErr {
				if !errors.Is(err, ErrBadHeader) {
					t.Fatalf("Accept = %v, want ErrBadHeader", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c, err := r.Take(context.Background(), tc.wantKey)
			if err != nil {
				t.Fatal(err)
			}
			b := make([]byte, 7)
			if _, err := c.Read(b); err != nil || string(b) != "payload" {
				t.Fatalf("payload = %q, %v: the header must not consume stream bytes", b, err)
			}
		})
	}
}
