/* Preloaded into the relay under valgrind (callgrind.py). valgrind 3.19, Debian 12's,
 * writes to the signal mask a program hands to sigsuspend; libdispatch's signal
 * thread hands it a mask in read-only memory, and valgrind then dies of SIGSEGV.
 * This sigsuspend passes a copy on the stack instead. */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

int sigsuspend(const sigset_t *mask) {
    sigset_t copy = *mask;
    return (int)syscall(SYS_rt_sigsuspend, &copy, _NSIG / 8);
}
