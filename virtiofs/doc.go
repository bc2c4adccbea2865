// Package virtiofs runs and stops virtiofsd, the vhost-user daemon that
// serves a sandbox's share to the guest. virtiofsd runs with
// --sandbox namespace: its own mount namespace whose root is the share,
// where runtime/statedir puts container mounts (MountNamespace). The share
// itself, and every host operation on it, belong to runtime/statedir.
package virtiofs
