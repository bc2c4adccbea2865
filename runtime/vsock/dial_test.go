package vsock

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeMux is a hybrid vsock socket: it reads the CONNECT line and answers
// with reply, then sends payload.
func fakeMux(t *testing.T, reply, payload string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vsock.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				line, err := bufio.NewReader(c).ReadString('\n')
				if err != nil || line != "CONNECT 1024\n" {
					return
				}
				if reply == "" { // hang: never answer
					_, _ = io.Copy(io.Discard, c)
					return
				}
				_, _ = io.WriteString(c, reply+payload)
			}()
		}
	}()
	return path
}

func TestDial(t *testing.T) {
	cases := []struct {
		name    string
		reply   string
		payload string
		timeout time.Duration
		wantErr string
	}{
		{name: "ok with port number", reply: "OK 1073741824\n", payload: "hello"},
		{name: "bare ok", reply: "OK\n", payload: "x"},
		{name: "no reply before deadline", reply: "", payload: "", timeout: 200 * time.Millisecond, wantErr: "deadline exceeded"},
		{name: "garbage", reply: "NOPE\n", wantErr: `reply "NOPE"`},
		{name: "refused: closed without full reply", reply: "OK", wantErr: "EOF"},
		{name: "overlong reply", reply: strings.Repeat("O", 200), wantErr: "longer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := fakeMux(t, tc.reply, tc.payload)
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			conn, err := Dial(ctx, path, 1024)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = conn.Close() }()
			got, err := io.ReadAll(conn)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.payload {
				t.Fatalf("payload = %q, want %q (reply over-read?)", got, tc.payload)
			}
			if err := conn.CloseWrite(); err != nil {
				t.Fatalf("CloseWrite: %v", err)
			}
		})
	}
}

func TestDialNoSocket(t *testing.T) {
	_, err := Dial(context.Background(), filepath.Join(t.TempDir(), "absent.sock"), 1024)
	if err == nil || !strings.Contains(err.Error(), "absent.sock") {
		t.Fatalf("err = %v", err)
	}
}

func TestDialCancel(t *testing.T) {
	path := fakeMux(t, "", "")
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := Dial(ctx, path, 1024)
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}
