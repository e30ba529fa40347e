// LD_PRELOAD heap-allocation counter for the benchmark suite (bench/run).
//
// Counts malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign and
// free calls per thread, forwarding to glibc's __libc_* entry points (no dlsym:
// dlsym itself allocates). On SIGUSR2 it writes one line per thread that ever
// allocated to $MALLOC_COUNT_OUT: "tid comm mallocs frees bytes". The
// benchmark takes a snapshot, sends N requests, snapshots, sends 2N, snapshots:
// the difference of the two deltas is the steady-state cost of N requests,
// with connection setup and warm-up cancelled out.
//
// Build: cc -O2 -shared -fPIC -o malloc-count.so malloc-count.c -lpthread
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

#define MAX_THREADS 256

struct slot {
    _Atomic long tid;
    _Atomic unsigned long allocs;
    _Atomic unsigned long frees;
    _Atomic unsigned long bytes;
};
static struct slot slots[MAX_THREADS];
static _Atomic int slot_count;
static __thread struct slot *mine;

static struct slot *my_slot(void) {
    if (mine) return mine;
    long tid = syscall(SYS_gettid);
    int index = atomic_fetch_add(&slot_count, 1);
    if (index >= MAX_THREADS) index = MAX_THREADS - 1; // overflow shares the last slot
    atomic_store(&slots[index].tid, tid);
    mine = &slots[index];
    return mine;
}

static inline void count_alloc(size_t size) {
    struct slot *s = my_slot();
    atomic_fetch_add_explicit(&s->allocs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->bytes, size, memory_order_relaxed);
}

void *malloc(size_t size) { count_alloc(size); return __libc_malloc(size); }
void *calloc(size_t n, size_t size) { count_alloc(n * size); return __libc_calloc(n, size); }
void *realloc(void *p, size_t size) { count_alloc(size); return __libc_realloc(p, size); }
void *memalign(size_t align, size_t size) { count_alloc(size); return __libc_memalign(align, size); }
void *aligned_alloc(size_t align, size_t size) { count_alloc(size); return __libc_memalign(align, size); }
int posix_memalign(void **out, size_t align, size_t size) {
    count_alloc(size);
    void *p = __libc_memalign(align, size);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
void free(void *p) {
    if (!p) return;
    atomic_fetch_add_explicit(&my_slot()->frees, 1, memory_order_relaxed);
    __libc_free(p);
}

// Async-signal-safe formatting: no stdio in the handler.
static char *put_ulong(char *out, unsigned long v) {
    char digits[24];
    int n = 0;
    do { digits[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) *out++ = digits[--n];
    return out;
}

static void dump(int sig) {
    (void)sig;
    int saved = errno;
    const char *path = getenv("MALLOC_COUNT_OUT");
    if (!path) { errno = saved; return; }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { errno = saved; return; }
    int count = atomic_load(&slot_count);
    if (count > MAX_THREADS) count = MAX_THREADS;
    for (int i = 0; i < count; i++) {
        char line[256], *p = line;
        long tid = atomic_load(&slots[i].tid);
        p = put_ulong(p, (unsigned long)tid);
        *p++ = ' ';
        // Thread name from /proc (open/read are async-signal-safe).
        char comm_path[64], *c = comm_path;
        const char *prefix = "/proc/self/task/";
        while (*prefix) *c++ = *prefix++;
        c = put_ulong(c, (unsigned long)tid);
        const char *suffix = "/comm";
        while (*suffix) *c++ = *suffix++;
        *c = 0;
        int comm_fd = open(comm_path, O_RDONLY);
        ssize_t got = comm_fd >= 0 ? read(comm_fd, p, 32) : -1;
        if (comm_fd >= 0) close(comm_fd);
        if (got > 0) {
            for (ssize_t k = 0; k < got; k++) if (p[k] == '\n' || p[k] == ' ') p[k] = '_';
            while (got > 0 && p[got - 1] == '_') got--;
            p += got;
        } else {
            *p++ = '-';
        }
        *p++ = ' ';
        p = put_ulong(p, atomic_load(&slots[i].allocs));
        *p++ = ' ';
        p = put_ulong(p, atomic_load(&slots[i].frees));
        *p++ = ' ';
        p = put_ulong(p, atomic_load(&slots[i].bytes));
        *p++ = '\n';
        ssize_t ignored = write(fd, line, (size_t)(p - line));
        (void)ignored;
    }
    close(fd);
    errno = saved;
}

__attribute__((constructor)) static void install(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = dump;
    action.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &action, NULL);
}
