package sandbox

import (
	"context"
	"testing"
	"time"

	"github.com/veil-runtime/veil/runtime/config"
)

// TestStartStages: Start records every step's time in order, with the
// agent connection split at the ready notification into the boot and the
// handshake.
func TestStartStages(t *testing.T) {
	cases := []struct {
		name  string
		ready bool
		want  []string
	}{
		{name: "ready notification seen", ready: true, want: []string{"create sandbox dir", "start VM", StageBoot, StageHandshake, "CreateSandbox"}},
		{name: "no ready time: one stage", want: []string{"create sandbox dir", "start VM", "connect to agent", "CreateSandbox"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.StateDir = t.TempDir()
			step := func(name string, run func(s *Sandbox)) startStep {
				return startStep{name: name, run: func(_ context.Context, s *Sandbox, _ *startRun) (func(context.Context) error, error) {
					if run != nil {
						run(s)
					}
					return nil, nil
				}}
			}
			steps := []startStep{
				step("create sandbox dir", nil),
				step("start VM", nil),
				step("connect to agent", func(s *Sandbox) {
					if tc.ready {
						s.readyAt = time.Now()
					}
				}),
				step("CreateSandbox", nil),
			}
			s, err := start(context.Background(), mustDir(t, cfg, "sb"), cfg, Options{}, steps)
			if err != nil {
				t.Fatal(err)
			}
			got := s.StartStages()
			if len(got) != len(tc.want) {
				t.Fatalf("stages %+v, want %q", got, tc.want)
			}
			for i, st := range got {
				if st.Name != tc.want[i] || st.Took < 0 {
					t.Errorf("stage %d = %+v, want %q with a time", i, st, tc.want[i])
				}
			}
		})
	}
}
