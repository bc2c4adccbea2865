package cleanup

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/log"
)

// Timeout is the default bound of a cleanup.
const Timeout = 15 * time.Second

// Context returns a context for cleaning up after work done under ctx: it
// keeps ctx's values (its logger) but not its cancellation or deadline, and
// ends after d (Timeout when d <= 0).
func Context(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		d = Timeout
	}
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}

// Stack records how to undo the steps of a setup that succeeded. The zero
// value is ready to use; a Stack is not safe for concurrent use.
type Stack struct {
	// Timeout bounds Unwind as a whole; 0 is the package's Timeout.
	Timeout time.Duration
	steps   []step
}

type step struct {
	what string
	undo func(context.Context) error
}

// Push records how to undo the step just done; what names it in errors
// and logs ("remove the state directory").
func (s *Stack) Push(what string, undo func(context.Context) error) {
	s.steps = append(s.steps, step{what: what, undo: undo})
}

// Len is the number of steps recorded.
func (s *Stack) Len() int { return len(s.steps) }

// Release forgets every step: the setup succeeded and its owner now undoes
// it another way.
func (s *Stack) Release() { s.steps = nil }

// Unwind undoes every recorded step in reverse order under Context(ctx,
// s.Timeout), each even when an earlier one failed, logs each failure, and
// returns them joined. The stack is empty afterwards.
func (s *Stack) Unwind(ctx context.Context) error {
	steps := s.steps
	s.steps = nil
	if len(steps) == 0 {
		return nil
	}
	cctx, cancel := Context(ctx, s.Timeout)
	defer cancel()
	var errs []error
	for i := len(steps) - 1; i >= 0; i-- {
		if err := steps[i].undo(cctx); err != nil {
			err = fmt.Errorf("undo %s: %w", steps[i].what, err)
			log.G(ctx).WithError(err).Warn("rollback")
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// OnError unwinds the stack when *errp is not nil; meant for a defer in
// the function whose named result errp is:
//
//	var undo cleanup.Stack
//	defer undo.OnError(ctx, &retErr)
//
// The undo errors are logged, not returned: the caller's error says what
// failed.
func (s *Stack) OnError(ctx context.Context, errp *error) {
	if *errp == nil {
		return
	}
	_ = s.Unwind(ctx)
}
