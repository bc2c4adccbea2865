package container

import (
	"github.com/opencontainers/runc/libcontainer"
	// nsenter's constructor joins the container's namespaces before the
	// Go runtime starts, when libcontainer re-executes the agent.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
)

// InitArg is the argument with which libcontainer re-executes the agent
// binary inside a new container.
const InitArg = "init"

// Init is libcontainer's init inside a new container: it sets the
// container up and execs the container process. It returns only on
// failure, after reporting it to the agent that started it.
func Init() { libcontainer.Init() }
