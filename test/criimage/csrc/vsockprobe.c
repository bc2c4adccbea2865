/* vsockprobe opens a stream socket of the address family its argument
 * names (vsock, the default; vsockhi, AF_VSOCK with bit 32 of the
 * register set, which the kernel ignores; unix; inet), or with io_uring
 * sets up an io_uring (whose IORING_OP_SOCKET would open sockets past
 * seccomp), and prints "<name>: ok" or "<name>: <error>" (EPERM, ENOSYS,
 * EAFNOSUPPORT or strerror): Veil's test that containers cannot open
 * AF_VSOCK. Exit status 0 when it succeeded, 2 on EPERM, 1 otherwise. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif

static const char *ename(int e)
{
	switch (e) {
	case EPERM:
		return "EPERM";
	case ENOSYS:
		return "ENOSYS";
	case EAFNOSUPPORT:
		return "EAFNOSUPPORT";
	}
	return strerror(e);
}

int main(int argc, char **argv)
{
	const char *name = argc > 1 ? argv[1] : "vsock";
	long family = AF_VSOCK;
	long fd;
	if (strcmp(name, "vsockhi") == 0)
		family = 1L << 32 | AF_VSOCK;
	else if (strcmp(name, "unix") == 0)
		family = AF_UNIX;
	else if (strcmp(name, "inet") == 0)
		family = AF_INET;
	if (strcmp(name, "io_uring") == 0) {
		char params[120] = {0}; /* struct io_uring_params */
		fd = syscall(SYS_io_uring_setup, 1L, params);
	} else {
		/* syscall(2), not socket(3): all 64 bits reach the kernel. */
		fd = syscall(SYS_socket, family, (long)SOCK_STREAM, 0L);
	}
	if (fd < 0) {
		int e = errno;
		printf("%s: %s\n", name, ename(e));
		return e == EPERM ? 2 : 1;
	}
	close(fd);
	printf("%s: ok\n", name);
	return 0;
}
