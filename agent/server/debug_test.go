package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/veil-runtime/veil/agent/api"
)

func TestDebugExec(t *testing.T) {
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "veil-hello"), []byte("#!/bin/sh\necho hello \"$0\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		req        *api.DebugExecRequest
		wantCode   codes.Code
		wantStatus uint32
		wantOut    string
		wantErr    string
		timedOut   bool
		truncated  bool
	}{
		{name: "stdout and status", req: &api.DebugExecRequest{Argv: []string{"sh", "-c", "echo hi; echo oops >&2; exit 3"}}, wantStatus: 3, wantOut: "hi\n", wantErr: "oops\n"},
		{name: "stdin and env", req: &api.DebugExecRequest{Argv: []string{"sh", "-c", "cat; echo $VEIL_X"}, Env: []string{"VEIL_X=y"}, Stdin: []byte("in:")}, wantOut: "in:y\n"},
		{name: "killed at timeout", req: &api.DebugExecRequest{Argv: []string{"sh", "-c", "echo started; exec sleep 30"}, TimeoutMs: 200}, wantStatus: 128 + 9, wantOut: "started\n", timedOut: true},
		{name: "output bounded", req: &api.DebugExecRequest{Argv: []string{"head", "-c", "2000000", "/dev/zero"}}, truncated: true},
		{name: "PATH from the request", req: &api.DebugExecRequest{Argv: []string{"veil-hello"}, Env: []string{"PATH=" + bin}}, wantOut: "hello " + filepath.Join(bin, "veil-hello") + "\n"},
		{name: "not on the request's PATH", req: &api.DebugExecRequest{Argv: []string{"sh"}, Env: []string{"PATH=" + bin}}, wantCode: codes.NotFound},
		{name: "empty argv", req: &api.DebugExecRequest{}, wantCode: codes.InvalidArgument},
		{name: "unknown program", req: &api.DebugExecRequest{Argv: []string{"/nonexistent/veil-prog"}}, wantCode: codes.NotFound},
		{name: "timeout too long", req: &api.DebugExecRequest{Argv: []string{"true"}, TimeoutMs: 3600_000}, wantCode: codes.InvalidArgument},
	}
	s := NewService("v", &fakeContainers{}, &fakeGuest{})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := s.DebugExec(context.Background(), tc.req)
			if got := status.Code(err); got != tc.wantCode {
				t.Fatalf("code %v (%v), want %v", got, err, tc.wantCode)
			}
			if err != nil {
				return
			}
			if resp.ExitStatus != tc.wantStatus || resp.TimedOut != tc.timedOut || resp.StdoutTruncated != tc.truncated {
				t.Errorf("status %d timed_out %v truncated %v, want %d %v %v", resp.ExitStatus, resp.TimedOut, resp.StdoutTruncated, tc.wantStatus, tc.timedOut, tc.truncated)
			}
			if tc.truncated {
				if len(resp.Stdout) != DebugExecOutputLimit {
					t.Errorf("stdout %d bytes, want %d", len(resp.Stdout), DebugExecOutputLimit)
				}
				return
			}
			if string(resp.Stdout) != tc.wantOut || !strings.Contains(string(resp.Stderr), tc.wantErr) {
				t.Errorf("stdout %q stderr %q, want %q %q", resp.Stdout, resp.Stderr, tc.wantOut, tc.wantErr)
			}
		})
	}
}
