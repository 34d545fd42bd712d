/* A malloc counter for the bench: LD_PRELOAD it into orgd and it counts
 * every allocation (malloc, calloc, realloc, posix_memalign, aligned_alloc,
 * memalign) and every free, process-wide, with relaxed atomics, passing
 * each call on to glibc's own allocator (__libc_*).
 *
 *   gcc -O2 -shared -fPIC -o malloc_count.so bench/malloc_count.c
 *   MALLOC_COUNT_FILE=/tmp/counts LD_PRELOAD=./malloc_count.so orgd ...
 *
 * Every 20 ms a thread of its own writes "ALLOCATIONS FREES\n" over the
 * start of MALLOC_COUNT_FILE, so a reader takes the counts before and after
 * a load and divides by the calls answered in between (bench/run.py's
 * allocations-per-call figure). Without MALLOC_COUNT_FILE it only counts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static atomic_ulong allocations;
static atomic_ulong frees;

void *malloc(size_t size) {
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    return __libc_malloc(size);
}

void *calloc(size_t count, size_t size) {
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    return __libc_calloc(count, size);
}

void *realloc(void *pointer, size_t size) {
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    return __libc_realloc(pointer, size);
}

void free(void *pointer) {
    if (pointer) atomic_fetch_add_explicit(&frees, 1, memory_order_relaxed);
    __libc_free(pointer);
}

void *memalign(size_t alignment, size_t size) {
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size) {
    return memalign(alignment, size);
}

int posix_memalign(void **out, size_t alignment, size_t size) {
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
    void *pointer = memalign(alignment, size);
    if (!pointer) return ENOMEM;
    *out = pointer;
    return 0;
}

static void *writer(void *path) {
    int fd = open((const char *)path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return NULL;
    struct timespec pause = {0, 20 * 1000 * 1000};
    char line[64];
    for (;;) {
        int length = snprintf(line, sizeof line, "%20lu %20lu\n", atomic_load_explicit(&allocations, memory_order_relaxed),
                              atomic_load_explicit(&frees, memory_order_relaxed));
        if (pwrite(fd, line, (size_t)length, 0) < 0) break;
        nanosleep(&pause, NULL);
    }
    close(fd);
    return NULL;
}

__attribute__((constructor)) static void start(void) {
    const char *path = getenv("MALLOC_COUNT_FILE");
    if (!path || !*path) return;
    static char copy[4096];
    strncpy(copy, path, sizeof copy - 1);
    pthread_t thread;
    if (pthread_create(&thread, NULL, writer, copy) == 0) pthread_detach(thread);
}
