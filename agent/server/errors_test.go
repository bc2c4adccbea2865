package server

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestToStatus(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want codes.Code
	}{
		{"not found", fmt.Errorf("container c1: %w", errdefs.ErrNotFound), codes.NotFound},
		{"exists", fmt.Errorf("container c1: %w", errdefs.ErrAlreadyExists), codes.AlreadyExists},
		{"invalid", fmt.Errorf("bad spec: %w", errdefs.ErrInvalidArgument), codes.InvalidArgument},
		{"precondition", fmt.Errorf("not running: %w", errdefs.ErrFailedPrecondition), codes.FailedPrecondition},
		{"deadline", fmt.Errorf("wait: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{"plain", errors.New(`exec: "nosuchcmd": executable file not found in $PATH`), codes.Unknown},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, ok := status.FromError(toStatus(tc.err))
			if !ok {
				t.Fatal("not a status error")
			}
			if st.Code() != tc.want || st.Message() != tc.err.Error() {
				t.Fatalf("status = %v %q, want %v %q", st.Code(), st.Message(), tc.want, tc.err.Error())
			}
		})
	}
	if toStatus(nil) != nil {
		t.Fatal("nil error mapped to non-nil")
	}
}
