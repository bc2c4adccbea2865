/* webserver stands in for nginx and httpd in Veil's CRI test images.
 *
 *   webserver [-p PORT] [-P PIDFILE] [WORDS...]
 *
 * It writes its pid to PIDFILE (when given), prints "<name>: listening on
 * port PORT" (name = basename of argv[0]) and answers every HTTP request
 * on PORT (default 80) with 200 and a short page. WORDS are ignored: the
 * images pass "master process" so /proc/1/cmdline reads like nginx's.
 * SIGTERM and SIGINT exit 0. */
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void quit(int sig) { (void)sig; _exit(0); }

int main(int argc, char **argv)
{
	int port = 80, i;
	const char *pidfile = NULL, *name = strrchr(argv[0], '/');
	name = name ? name + 1 : argv[0];
	for (i = 1; i + 1 < argc; i++) {
		if (strcmp(argv[i], "-p") == 0)
			port = atoi(argv[++i]);
		else if (strcmp(argv[i], "-P") == 0)
			pidfile = argv[++i];
	}
	struct sigaction q = {.sa_handler = quit};
	sigaction(SIGINT, &q, NULL);
	sigaction(SIGTERM, &q, NULL);
	signal(SIGPIPE, SIG_IGN);

	int s = socket(AF_INET6, SOCK_STREAM, 0), on = 1, off = 0;
	struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = IN6ADDR_ANY_INIT};
	struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr = {htonl(INADDR_ANY)}};
	if (s >= 0) {
		setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
		setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
		if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) {
			close(s);
			s = -1;
		}
	}
	if (s < 0) { /* no IPv6 in this network namespace */
		s = socket(AF_INET, SOCK_STREAM, 0);
		setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
		if (s < 0 || bind(s, (struct sockaddr *)&a4, sizeof a4) < 0) {
			perror("bind");
			return 1;
		}
	}
	if (listen(s, 64) < 0) {
		perror("listen");
		return 1;
	}
	if (pidfile) {
		FILE *f = fopen(pidfile, "w");
		if (!f) {
			perror(pidfile);
			return 1;
		}
		fprintf(f, "%d\n", (int)getpid());
		fclose(f);
	}
	printf("%s: listening on port %d\n", name, port);
	fflush(stdout);

	static const char page[] = "<html><body><h1>It works!</h1></body></html>\n";
	char buf[4096], head[256];
	for (;;) {
		int c = accept(s, NULL, NULL);
		if (c < 0)
			continue;
		ssize_t n = read(c, buf, sizeof buf); /* one request, small enough for one read */
		if (n > 0) {
			int h = snprintf(head, sizeof head,
					 "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
					 sizeof page - 1);
			if (write(c, head, h) == h && strncmp(buf, "HEAD ", 5) != 0)
				(void)!write(c, page, sizeof page - 1);
		}
		close(c);
	}
}
