/* vsockprobe opens a stream socket of the address family its argument
 * names (vsock, the default; unix; inet) and prints "<family>: ok" or
 * "<family>: EPERM" (or the error): Veil's test that containers cannot
 * open AF_VSOCK. Exit status 0 when the socket opened, 2 on EPERM, 1
 * otherwise. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

int main(int argc, char **argv)
{
	const char *name = argc > 1 ? argv[1] : "vsock";
	int family = AF_VSOCK;
	if (strcmp(name, "unix") == 0)
		family = AF_UNIX;
	else if (strcmp(name, "inet") == 0)
		family = AF_INET;
	int fd = socket(family, SOCK_STREAM, 0);
	if (fd < 0) {
		int e = errno;
		printf("%s: %s\n", name, e == EPERM ? "EPERM" : strerror(e));
		return e == EPERM ? 2 : 1;
	}
	close(fd);
	printf("%s: ok\n", name);
	return 0;
}
