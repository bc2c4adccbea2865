package task

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestErrorConversion(t *testing.T) {
	const notFoundMsg = `exec: "nosuchcmd": executable file not found in $PATH`
	cases := []struct {
		name     string
		err      error
		wantCode codes.Code
		wantMsg  []string
	}{
		{name: "nil", err: nil, wantCode: codes.OK},
		{name: "agent unknown error keeps message",
			err:      fromAgent(status.Error(codes.Unknown, notFoundMsg), "start container %s", "c1"),
			wantCode: codes.Unknown, wantMsg: []string{"start container c1", notFoundMsg}},
		{name: "agent not found stays not found",
			err:      fromAgent(status.Error(codes.NotFound, "no such container"), "signal %s", "c1"),
			wantCode: codes.NotFound, wantMsg: []string{"signal c1", "no such container"}},
		{name: "native errdefs class", err: errProcessFinished, wantCode: codes.NotFound, wantMsg: []string{"process already finished"}},
		{name: "not implemented", err: errdefs.ErrNotImplemented, wantCode: codes.Unimplemented},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := toService(tc.err)
			if tc.err == nil {
				if got != nil {
					t.Fatalf("toService(nil) = %v", got)
				}
				return
			}
			st, ok := status.FromError(got)
			if !ok {
				t.Fatalf("not a status: %v", got)
			}
			if st.Code() != tc.wantCode {
				t.Fatalf("code %v, want %v (%v)", st.Code(), tc.wantCode, got)
			}
			for _, m := range tc.wantMsg {
				if !strings.Contains(st.Message(), m) {
					t.Fatalf("message %q lacks %q", st.Message(), m)
				}
			}
		})
	}
}
