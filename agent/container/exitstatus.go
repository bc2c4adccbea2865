package container

import (
	"os"
	"syscall"
)

// ExitStatus maps a wait status to the shell convention: the exit code, or
// 128+signal for a process killed by a signal.
func ExitStatus(ws syscall.WaitStatus) uint32 {
	switch {
	case ws.Exited():
		return uint32(ws.ExitStatus())
	case ws.Signaled():
		return 128 + uint32(ws.Signal())
	default:
		return 255
	}
}

// stateExitStatus maps what os.Process.Wait returned; an unknown state
// counts as 255.
func stateExitStatus(st *os.ProcessState) uint32 {
	if st == nil {
		return 255
	}
	ws, ok := st.Sys().(syscall.WaitStatus)
	if !ok {
		return uint32(st.ExitCode() & 0xff)
	}
	return ExitStatus(ws)
}
