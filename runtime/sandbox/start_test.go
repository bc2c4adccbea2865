package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veil-runtime/veil/runtime/config"
	"github.com/veil-runtime/veil/runtime/statedir"
)

// recordedSteps are Start's steps, named as Start names them, with runs
// that only record what they did and undid.
type recordedSteps struct {
	steps  []startStep
	did    []string
	undone []string
	// undoCtxErr and undoDeadline are what the undos saw of their context.
	undoCtxErr   []error
	undoDeadline []bool
}

// fakeSteps replaces every step of Start: step fail returns cause after
// calling before (nil: nothing); the others succeed with an undo.
func fakeSteps(fail int, cause error, before func()) *recordedSteps {
	r := &recordedSteps{}
	for i, real := range startSteps() {
		name := real.name
		r.steps = append(r.steps, startStep{name: name, run: func(context.Context, *Sandbox, *startRun) (func(context.Context) error, error) {
			if i == fail {
				if before != nil {
					before()
				}
				return nil, cause
			}
			r.did = append(r.did, name)
			return func(ctx context.Context) error {
				r.undone = append(r.undone, name)
				r.undoCtxErr = append(r.undoCtxErr, ctx.Err())
				_, ok := ctx.Deadline()
				r.undoDeadline = append(r.undoDeadline, ok)
				return nil
			}, nil
		}})
	}
	return r
}

// TestStartRollback: when step k fails, Start's error names the step and
// wraps its cause, exactly the steps before it are undone, in reverse
// order, and the undos run under a bounded context that the caller's
// cancellation does not reach.
func TestStartRollback(t *testing.T) {
	names := []string{}
	for _, st := range startSteps() {
		names = append(names, st.name)
	}
	if len(names) < 8 {
		t.Fatalf("Start has %d steps: %q", len(names), names)
	}
	cause := errors.New("injected failure")
	type tc struct {
		name   string
		fail   int
		cancel bool // the caller's ctx is cancelled when the step fails
	}
	var cases []tc
	for k, n := range names {
		cases = append(cases,
			tc{name: fmt.Sprintf("%02d %s fails", k, n), fail: k},
			tc{name: fmt.Sprintf("%02d %s fails, caller cancelled", k, n), fail: k, cancel: true})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.StateDir = t.TempDir()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			before := func() {}
			if c.cancel {
				before = cancel
			}
			rec := fakeSteps(c.fail, cause, before)
			s, err := start(ctx, mustDir(t, cfg, "sb"), cfg, Options{}, rec.steps)
			if s != nil || err == nil {
				t.Fatalf("start = %v, %v; want an error", s, err)
			}
			if !errors.Is(err, cause) {
				t.Errorf("error %q does not wrap the cause", err)
			}
			if want := "sandbox sb: " + names[c.fail] + ": "; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q does not begin with %q", err, want)
			}
			if want := names[:c.fail]; !slices.Equal(rec.did, want) {
				t.Errorf("did %q, want %q", rec.did, want)
			}
			want := slices.Clone(names[:c.fail])
			slices.Reverse(want)
			if !slices.Equal(rec.undone, want) {
				t.Errorf("undone %q, want %q", rec.undone, want)
			}
			for i, e := range rec.undoCtxErr {
				if e != nil {
					t.Errorf("undo of %s ran under a done context: %v", rec.undone[i], e)
				}
				if !rec.undoDeadline[i] {
					t.Errorf("undo of %s ran without a bound", rec.undone[i])
				}
			}
		})
	}
}

// TestStartSucceeds: a start whose steps all succeed undoes none of them.
func TestStartSucceeds(t *testing.T) {
	cfg := config.Default()
	cfg.StateDir = t.TempDir()
	rec := fakeSteps(-1, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := start(ctx, mustDir(t, cfg, "sb"), cfg, Options{}, rec.steps)
	if err != nil || s == nil || s.ID() != "sb" {
		t.Fatalf("start = %v, %v", s, err)
	}
	if len(rec.did) != len(rec.steps) || len(rec.undone) != 0 {
		t.Fatalf("did %q, undone %q", rec.did, rec.undone)
	}
}

// TestStartRejectsBadID: an id that escapes the state directory does
// nothing.
func TestStartRejectsBadID(t *testing.T) {
	cfg := config.Default()
	cfg.StateDir = t.TempDir()
	if _, err := Start(context.Background(), "../etc", cfg, Options{}); err == nil {
		t.Fatal("Start(../etc) succeeded; want an error before any step")
	}
	if ents, _ := os.ReadDir(cfg.StateDir); len(ents) != 0 {
		t.Fatalf("state dir holds %d entries after a refused id", len(ents))
	}
}

// TestStartStepOrder: Start brings a sandbox up in the order the
// architecture needs (the share's server before the VM, the ready
// listener before the VM, the agent after it).
func TestStartStepOrder(t *testing.T) {
	var got []string
	for _, st := range startSteps() {
		got = append(got, st.name)
	}
	want := []string{
		"create sandbox dir", "record the pod", "jail uid", "sandbox cgroup", "create the share",
		"start virtiofsd", "give virtiofsd's socket to the jail uid",
		"helper directory", "listen for agent ready", "attach network", "console",
		"open taps", "hypervisor", "start VM", "connect to agent",
		"CreateSandbox", "SetupNetwork", "watch virtiofsd",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("steps %q, want %q", got, want)
	}
}

func mustDir(t *testing.T, cfg *config.Config, id string) statedir.Dir {
	t.Helper()
	d, err := statedir.New(cfg.StateDir, id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
