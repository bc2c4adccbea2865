// Package vsock dials guest vsock ports through a hybrid vsock Unix socket,
// the host side that Cloud Hypervisor, Firecracker and vhost-device-vsock
// expose: connect, write "CONNECT <port>\n", read a line starting "OK".
package vsock
