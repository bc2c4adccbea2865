// Package virtiofs owns the host side of a sandbox's virtio-fs share: the
// shared directory (a bind mount of itself with shared propagation, so
// that mounts made under it later reach virtiofsd's mount namespace and
// the guest) and the virtiofsd daemon that serves it over vhost-user.
package virtiofs
