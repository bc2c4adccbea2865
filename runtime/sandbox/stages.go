package sandbox

import "time"

// Stage is one stage of a sandbox's start and how long it took.
type Stage struct {
	// Name is the start step's (see startSteps), except that the wait for
	// the agent is split in two: "boot to agent ready" (from the end of
	// "start VM" to the agent's ready notification) and "agent handshake"
	// (dial, Health, version check).
	Name string
	Took time.Duration
}

// Stage names the start splits "connect to agent" into.
const (
	StageBoot      = "boot to agent ready"
	StageHandshake = "agent handshake"
)

// StartStages is how long each stage of the sandbox's start took, in
// order (make bench breaks a cold start down with it).
func (s *Sandbox) StartStages() []Stage { return append([]Stage(nil), s.stages...) }

// recordStage adds a finished step to s.stages: the agent connection as
// its two stages when the ready notification's time is known.
func (s *Sandbox) recordStage(name string, began, ended time.Time) {
	if name == "connect to agent" && !s.readyAt.IsZero() {
		s.stages = append(s.stages,
			Stage{Name: StageBoot, Took: s.readyAt.Sub(began)},
			Stage{Name: StageHandshake, Took: ended.Sub(s.readyAt)})
		return
	}
	s.stages = append(s.stages, Stage{Name: name, Took: ended.Sub(began)})
}

// Start modes: StartMode's answers.
const (
	StartCold = "cold"
	StartWarm = "warm"
)

// StartMode is StartWarm for a sandbox that took over a warm pool VM
// (Adopt), StartCold for one that booted its own.
func (s *Sandbox) StartMode() string {
	if s.dir.Pool() {
		return StartWarm
	}
	return StartCold
}
