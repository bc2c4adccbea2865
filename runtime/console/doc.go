// Package console owns the host's copy of a guest's serial console: the
// bounded files it is kept in (path and its rotated half path+".1"),
// reading them back (whole, the last lines for error messages, or
// followed as the guest writes), and rendering them for a terminal.
//
// The guest writes its console as fast as it likes; the host keeps a
// bounded amount of it. A Log writes path until it holds half of its
// bound, then renames it to path+".1" (replacing the older half) and
// starts path anew, so the two files never hold more than the bound. The
// VMM hands the console to the shim over a socket or pipe, and Drain
// keeps reading it whatever happens to the files (a full disk, a removed
// directory), so the guest's serial port never stalls.
//
// Console bytes come from a hostile guest. The files are created by the
// host in a host-owned directory, but Read, Tail and Follow still bound
// what they read, open with O_NOFOLLOW|O_NONBLOCK and read only regular
// files; Escape renders the bytes harmless for a terminal, so an escape
// sequence from the guest cannot drive the operator's.
package console
