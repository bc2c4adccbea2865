// Package cleanup owns how Veil undoes work: a multi-step setup records how
// to undo each step that succeeded on a Stack, and when a later step fails
// the Stack undoes them in reverse order. Undoing runs under Context: a
// context the caller's cancellation does not reach (a cancelled request
// must still be cleaned up after), bounded so a stuck step cannot hang the
// caller. The shim, runtime/sandbox and the guest agent all use it.
package cleanup
