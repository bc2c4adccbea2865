package task

import (
	"errors"
	"testing"
	"time"

	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
)

func TestProcessTransitions(t *testing.T) {
	type step struct {
		op         string // "start", "run" or "exit"
		wantErr    error
		recorded   bool
		wasRunning bool
		announced  bool
	}
	cases := []struct {
		name      string
		steps     []step
		wantState procState
		wantTask  task.Status
	}{
		{name: "created", wantState: stateCreated, wantTask: task.Status_CREATED},
		{name: "starting", steps: []step{{op: "start"}}, wantState: stateStarting, wantTask: task.Status_CREATED},
		{name: "run", steps: []step{{op: "start"}, {op: "run"}}, wantState: stateRunning, wantTask: task.Status_RUNNING},
		{name: "run without start", steps: []step{{op: "run", wantErr: errdefs.ErrFailedPrecondition}}, wantState: stateCreated, wantTask: task.Status_CREATED},
		{name: "second start refused", steps: []step{{op: "start"}, {op: "start", wantErr: errdefs.ErrFailedPrecondition}}, wantState: stateStarting, wantTask: task.Status_CREATED},
		{name: "run then exit", steps: []step{{op: "start"}, {op: "run"}, {op: "exit", recorded: true, wasRunning: true, announced: true}}, wantState: stateStopped, wantTask: task.Status_STOPPED},
		{name: "exit without running", steps: []step{{op: "exit", recorded: true}}, wantState: stateStopped, wantTask: task.Status_STOPPED},
		{name: "failed start", steps: []step{{op: "start"}, {op: "exit", recorded: true}}, wantState: stateStopped, wantTask: task.Status_STOPPED},
		{name: "second exit ignored", steps: []step{{op: "start"}, {op: "run"}, {op: "exit", recorded: true, wasRunning: true, announced: true}, {op: "exit"}}, wantState: stateStopped, wantTask: task.Status_STOPPED},
		{name: "run twice", steps: []step{{op: "start"}, {op: "run"}, {op: "run", wantErr: errdefs.ErrFailedPrecondition}}, wantState: stateRunning, wantTask: task.Status_RUNNING},
		{name: "start after exit", steps: []step{{op: "exit", recorded: true}, {op: "start", wantErr: errdefs.ErrNotFound}}, wantState: stateStopped, wantTask: task.Status_STOPPED},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newProcess("c", "", stdioPaths{}, nil)
			for i, s := range tc.steps {
				var err error
				switch s.op {
				case "start":
					err = p.markStarting()
				case "run":
					err = p.markRunning()
				case "exit":
					announced := false
					rec, was := p.markExited(7, time.Unix(10, 0), func(ps processStatus) {
						announced = true
						// The exit is not visible while it is announced.
						select {
						case <-p.exited:
							t.Errorf("step %d: exited closed before the announcement", i)
						default:
						}
						if st := p.status().State; st != stateRunning {
							t.Errorf("step %d: state %v during the announcement, want running", i, st)
						}
						if ps.ExitStatus != 7 || ps.State != stateStopped {
							t.Errorf("step %d: announced %+v", i, ps)
						}
					})
					if rec != s.recorded || was != s.wasRunning || announced != s.announced {
						t.Fatalf("step %d: markExited = %v,%v (announced %v) want %v,%v (%v)", i, rec, was, announced, s.recorded, s.wasRunning, s.announced)
					}
				}
				if (s.wantErr == nil) != (err == nil) || (s.wantErr != nil && !errors.Is(err, s.wantErr)) {
					t.Fatalf("step %d: %s = %v, want %v", i, s.op, err, s.wantErr)
				}
			}
			st := p.status()
			if st.State != tc.wantState || st.State.taskStatus() != tc.wantTask {
				t.Fatalf("state %v (%v), want %v (%v)", st.State, st.State.taskStatus(), tc.wantState, tc.wantTask)
			}
			select {
			case <-p.exited:
				if st.State != stateStopped {
					t.Fatal("exited closed but not stopped")
				}
				if st.ExitStatus != 7 {
					t.Fatalf("exit status %d, want 7 (first exit wins)", st.ExitStatus)
				}
			default:
				if st.State == stateStopped {
					t.Fatal("stopped but exited not closed")
				}
			}
		})
	}
}

func TestContainerExecs(t *testing.T) {
	c := newContainer("c", "/b", nil, newProcess("c", "", stdioPaths{}, nil))
	if err := c.addExec(newProcess("c", "x", stdioPaths{}, nil)); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		op      func() error
		wantErr error
	}{
		{name: "duplicate exec", op: func() error { return c.addExec(newProcess("c", "x", stdioPaths{}, nil)) }, wantErr: errdefs.ErrAlreadyExists},
		{name: "init by empty id", op: func() error { p, err := c.process(""); _ = p; return err }},
		{name: "unknown exec", op: func() error { _, err := c.process("nope"); return err }, wantErr: errdefs.ErrNotFound},
		{name: "remove running exec", op: func() error {
			p, _ := c.process("x")
			_ = p.markStarting()
			_ = p.markRunning()
			_, err := c.removeExec("x")
			return err
		}, wantErr: errdefs.ErrFailedPrecondition},
		{name: "remove exited exec", op: func() error {
			p, _ := c.process("x")
			p.markExited(0, time.Now(), nil)
			_, err := c.removeExec("x")
			return err
		}},
		{name: "removed exec is gone", op: func() error { _, err := c.process("x"); return err }, wantErr: errdefs.ErrNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.op()
			if (tc.wantErr == nil) != (err == nil) || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
		})
	}
}
