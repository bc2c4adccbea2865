// Package proc runs and reaps the host helper processes of a sandbox
// (the VMM, virtiofsd, vhost-device-vsock): each in its own process group,
// killed if the runtime dies, with its output in <dir>/<name>.log and its
// pid in <dir>/<name>.pid so that a crashed runtime can be cleaned up
// (KillFromPidFile).
package proc
