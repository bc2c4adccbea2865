// Package guest owns veil-agent's PID 1 duties inside the micro-VM: the
// root and pseudo file systems, cgroup v2, kernel modules, the console log,
// reaping orphans, supervising the agent server process and powering the
// VM off when it ends. It also implements the sandbox-level guest work the
// server asks for (host name, the virtio-fs share).
package guest
