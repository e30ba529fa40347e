// Postern's C shim: only what Swift cannot import from Glibc on Linux.
// Never include <sys/socket.h> or <sys/epoll.h> here: doing so hides Glibc's
// socket constants from Swift in release builds. Types are forward-declared
// or replaced by plain integers and void pointers.
#ifndef POSTERN_SHIM_H
#define POSTERN_SHIM_H

#include <stdint.h>
#include <stddef.h>

// Reason: <sys/epoll.h> is not exported by Swift's Glibc module.
enum {
    POSTERN_EPOLLIN = 0x001,
    POSTERN_EPOLLPRI = 0x002,
    POSTERN_EPOLLOUT = 0x004,
    POSTERN_EPOLLERR = 0x008,
    POSTERN_EPOLLHUP = 0x010,
    POSTERN_EPOLLRDHUP = 0x2000,
    POSTERN_EPOLL_CTL_ADD = 1,
    POSTERN_EPOLL_CTL_DEL = 2,
    POSTERN_EPOLL_CTL_MOD = 3,
};

/// One readiness event: an unpacked copy of `struct epoll_event`.
typedef struct postern_epoll_event {
    uint32_t events;
    uint64_t data;
} postern_epoll_event;

int postern_epoll_create(void);
int postern_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);
/// Waits like epoll_wait and copies up to `max` events into `out`.
int postern_epoll_wait(int epfd, postern_epoll_event *out, int max, int timeout_ms);

// Reason: accept4 is a GNU extension that Glibc's module does not export.
// `addr` is a `struct sockaddr *` and `len` a `socklen_t *`.
int postern_accept4_nonblocking(int fd, void *addr, uint32_t *len);

// Reason: <sys/eventfd.h> is not exported.
int postern_eventfd_nonblocking(void);

// Reason: memmem is a GNU extension.
const void *postern_memmem(const void *haystack, size_t haystack_len,
                           const void *needle, size_t needle_len);

/// Returns the number of CPUs this process may run on (sched_getaffinity).
int postern_available_cpus(void);

/// Pins the calling thread to one CPU; returns 0 or an errno value.
int postern_pin_thread_to_cpu(int cpu);

// Reason: <malloc.h> is not exported by Swift's Glibc module.
/// glibc malloc_trim(0): gives whole free pages of every arena back to the kernel.
int postern_malloc_trim(void);

// Reason: pipe2 and splice are GNU extensions that Glibc's module does not export.
/// pipe2(O_NONBLOCK | O_CLOEXEC) into fds[0] (read end) and fds[1] (write end).
int postern_pipe_nonblocking(int fds[2]);
/// splice(2) of up to `length` bytes from `in` to `out` (one of them a pipe),
/// never blocking; `more` sets SPLICE_F_MORE (more data follows). Returns the
/// byte count, 0 at end of input, or -1 with errno.
long postern_splice(int in, int out, size_t length, int more);

#endif
