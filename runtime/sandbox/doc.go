// Package sandbox owns the host side of one sandbox (pod): its state
// directory under the configured state_dir, the shared directory and its
// virtiofsd, the VM and the connection to the guest agent. Start brings
// them up in that order and rolls back on failure; Stop tears everything
// down; Cleanup removes what a crashed runtime left behind.
package sandbox
