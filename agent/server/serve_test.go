package server

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/veil-runtime/veil/agent/container"
)

// acceptCounter is a listener that counts the Accept calls in flight.
type acceptCounter struct {
	net.Listener
	inAccept atomic.Int32
}

func (l *acceptCounter) Accept() (net.Conn, error) {
	l.inAccept.Add(1)
	defer l.inAccept.Add(-1)
	return l.Listener.Accept()
}

// failingListener fails its first Accept.
type failingListener struct{ net.Listener }

var errAcceptFailed = errors.New("accept failed")

func (l failingListener) Accept() (net.Conn, error) { return nil, errAcceptFailed }

// Serve owns its two servers: whichever way it ends, it returns only once
// neither is still accepting, with both listeners closed.
func TestServeWaitsForItsServers(t *testing.T) {
	tests := []struct {
		name       string
		failStream bool // the stream listener fails instead of ctx ending
		wantErr    error
	}{
		{name: "context ends", wantErr: nil},
		{name: "stream listener fails", failStream: true, wantErr: errAcceptFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			listen := func(name string) *acceptCounter {
				l, err := net.Listen("unix", filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				return &acceptCounter{Listener: l}
			}
			agentL, streamL := listen("agent.sock"), listen("stream.sock")
			var streamSide net.Listener = streamL
			if tc.failStream {
				streamSide = failingListener{streamL}
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			opts := Options{Version: "test", Guest: &fakeGuest{}, Container: container.Config{StateRoot: filepath.Join(dir, "state")}}
			served := make(chan error, 1)
			go func() { served <- Serve(ctx, agentL, streamSide, opts) }()
			if !tc.failStream {
				// The agent answers before it is stopped.
				conn, err := net.Dial("unix", agentL.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				_ = conn.Close()
				cancel()
			}
			err := <-served
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Serve = %v, want %v", err, tc.wantErr)
			}
			for name, l := range map[string]*acceptCounter{"agent": agentL, "stream": streamL} {
				if n := l.inAccept.Load(); n != 0 {
					t.Errorf("%s listener: %d Accept calls still running after Serve returned", name, n)
				}
				if _, err := net.Dial("unix", l.Addr().String()); err == nil {
					t.Errorf("%s listener still open after Serve returned", name)
				}
			}
		})
	}
}
