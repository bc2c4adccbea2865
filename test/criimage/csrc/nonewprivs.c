/* nonewprivs is installed setuid root in the nonewprivs test image: it
 * prints its effective uid, which stays the caller's when the container
 * runs with no_new_privs. */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	printf("Effective uid: %d\n", (int)geteuid());
	return 0;
}
