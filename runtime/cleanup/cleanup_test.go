package cleanup

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestStack(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name      string
		fail      error  // the setup's result
		undoFails string // the step whose undo fails
		wantRun   []string
		wantErr   bool
	}{
		{name: "success undoes nothing", wantRun: nil},
		{name: "failure undoes in reverse", fail: errBoom, wantRun: []string{"c", "b", "a"}},
		{name: "a failing undo does not stop the others", fail: errBoom, undoFails: "b", wantRun: []string{"c", "b", "a"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ran []string
			var unwindErr error
			setup := func() (retErr error) {
				var s Stack
				defer func() {
					if retErr != nil {
						unwindErr = s.Unwind(context.Background())
					}
				}()
				for _, name := range []string{"a", "b", "c"} {
					s.Push("step "+name, func(context.Context) error {
						ran = append(ran, name)
						if name == tc.undoFails {
							return errBoom
						}
						return nil
					})
				}
				return tc.fail
			}
			if err := setup(); !errors.Is(err, tc.fail) {
				t.Fatalf("setup = %v", err)
			}
			if !slices.Equal(ran, tc.wantRun) {
				t.Errorf("undone %v, want %v", ran, tc.wantRun)
			}
			if (unwindErr != nil) != tc.wantErr || (tc.wantErr && !errors.Is(unwindErr, errBoom)) {
				t.Errorf("Unwind = %v, want error %v", unwindErr, tc.wantErr)
			}
		})
	}
}

func TestOnErrorAndRelease(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		release bool
		want    int
	}{
		{name: "error unwinds", err: errors.New("x"), want: 1},
		{name: "nil error keeps", want: 0},
		{name: "released stack undoes nothing", err: errors.New("x"), release: true, want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			func() {
				var s Stack
				err := tc.err
				defer s.OnError(context.Background(), &err)
				s.Push("count", func(context.Context) error { n++; return nil })
				if tc.release {
					s.Release()
				}
			}()
			if n != tc.want {
				t.Errorf("undone %d times, want %d", n, tc.want)
			}
		})
	}
}

// A cancelled caller is still cleaned up after, within the bound.
func TestContextOutlivesCaller(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := Stack{Timeout: time.Minute}
	var undoErr error
	var deadline time.Time
	s.Push("observe", func(ctx context.Context) error {
		undoErr = ctx.Err()
		deadline, _ = ctx.Deadline()
		return nil
	})
	if err := s.Unwind(ctx); err != nil {
		t.Fatal(err)
	}
	if undoErr != nil {
		t.Errorf("undo ran under a cancelled context: %v", undoErr)
	}
	if d := time.Until(deadline); d <= 0 || d > time.Minute {
		t.Errorf("undo's deadline is %v away, want within 1m", d)
	}
}
