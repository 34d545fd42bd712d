/*
 * loadgen: a lean ttrpc load generator for orgd, in the manner of
 * redis-benchmark: pre-encoded request frames, epoll, pipelining, no
 * allocation in the loop.
 *
 *   gcc -O2 -Wall -Wextra -pthread -o loadgen bench/loadgen.c
 *   loadgen --unix orgd.sock --requests FILE [--connections N] [--pipeline P]
 *           [--duration S] [--warmup S] [--threads T] [--json]
 *   loadgen --tcp 127.0.0.1:7611 ...
 *
 * FILE holds serialized ttrpc.Request messages, each preceded by its length
 * as a u32 big-endian (bench/run.py writes them; a TCP run's requests carry
 * their `authorization` metadata). Each connection cycles through them from
 * its own starting point, keeping --pipeline calls in flight: on every
 * readiness event it parses every whole answer in its read buffer, then
 * refills the pipeline with one write. Stream ids are odd and increasing per
 * connection (1, 3, 5, ...), as ttrpc requires.
 *
 * A call's latency runs from the write that carried it to the read that
 * brought its answer (CLOCK_MONOTONIC), recorded in a log-linear histogram
 * of fixed size (1,024 linear sub-buckets per power of two: 0.1 % precision).
 * Calls sent during --warmup are answered but not counted; calls sent during
 * --duration are counted, the last ones' answers awaited after it. The
 * report: calls/s, p50/p90/p99/p99.9/max µs, answers per status code, and
 * loadgen's own CPU (getrusage, user + system) over the measured window.
 *
 * Exit status: 0 all answers OK; 3 some answers had another status (still
 * reported); 2 a protocol or connection failure (the peer closed, a frame
 * for a stream not in flight, an oversized or malformed answer); 1 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define HEADER 10
#define TYPE_REQUEST 1
#define TYPE_RESPONSE 2
#define CODES 17 /* gRPC codes 0..16; anything else is counted as "other" */
#define MESSAGE_SAMPLE 160

/* ---- histogram: log-linear, fixed memory ---------------------------- */

#define SUB_BITS 10
#define SUB_COUNT (1u << SUB_BITS)
#define MAX_EXPONENT 40 /* values up to 2^41 ns (about 36 minutes) */
#define BUCKETS ((MAX_EXPONENT - SUB_BITS + 2) * SUB_COUNT)

typedef struct {
    uint64_t counts[BUCKETS];
    uint64_t total;
    uint64_t sum_ns;
    uint64_t max_ns;
    uint64_t min_ns;
} histogram;

static inline unsigned bucket_of(uint64_t v) {
    if (v < SUB_COUNT) return (unsigned)v;
    if (v >> (MAX_EXPONENT + 1)) v = (UINT64_C(1) << (MAX_EXPONENT + 1)) - 1;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* e >= SUB_BITS */
    unsigned sub = (unsigned)(v >> (e - SUB_BITS)) - SUB_COUNT;
    return (e - SUB_BITS + 1) * SUB_COUNT + sub;
}

/* The middle of a bucket's range of values. */
static double bucket_value(unsigned index) {
    if (index < SUB_COUNT) return index;
    unsigned e = index / SUB_COUNT + SUB_BITS - 1;
    unsigned sub = index % SUB_COUNT;
    double width = (double)(UINT64_C(1) << (e - SUB_BITS));
    return ((double)(SUB_COUNT + sub) + 0.5) * width;
}

static inline void record(histogram *h, uint64_t ns) {
    h->counts[bucket_of(ns)]++;
    h->total++;
    h->sum_ns += ns;
    if (ns > h->max_ns) h->max_ns = ns;
    if (ns < h->min_ns) h->min_ns = ns;
}

static void merge(histogram *into, const histogram *from) {
    for (unsigned i = 0; i < BUCKETS; i++) into->counts[i] += from->counts[i];
    into->total += from->total;
    into->sum_ns += from->sum_ns;
    if (from->max_ns > into->max_ns) into->max_ns = from->max_ns;
    if (from->min_ns < into->min_ns) into->min_ns = from->min_ns;
}

static double percentile_ns(const histogram *h, double q) {
    if (h->total == 0) return 0;
    uint64_t rank = (uint64_t)(q / 100.0 * (double)h->total + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > h->total) rank = h->total;
    uint64_t seen = 0;
    for (unsigned i = 0; i < BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            double v = bucket_value(i);
            return v > (double)h->max_ns ? (double)h->max_ns : v;
        }
    }
    return (double)h->max_ns;
}

/* ---- options and shared state --------------------------------------- */

typedef struct {
    const uint8_t *data; /* a serialized ttrpc.Request */
    uint32_t length;
} request;

static struct {
    const char *unix_path;
    const char *tcp;
    const char *requests_file;
    int connections;
    int pipeline;
    int threads;
    double duration;
    double warmup;
    double drain;
    uint32_t max_frame;
    int json;
} options = {NULL, NULL, NULL, 1, 1, 1, 10, 1, 10, 4u << 20, 0};

static uint8_t *request_bytes; /* the --requests file, which requests[] point into */
static request *requests;
static size_t request_count;
static uint32_t longest_request;
static uint64_t start_ns, measure_ns, stop_ns;
static volatile int failed; /* set by any thread on a fatal error */

static const char *code_names[CODES] = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
    "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void die(const char *format, ...) {
    va_list list;
    va_start(list, format);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, format, list);
    fputc('\n', stderr);
    va_end(list);
    exit(1);
}

/* ---- connections and threads ---------------------------------------- */

typedef struct {
    uint32_t stream; /* 0: free */
    uint64_t sent_ns;
} slot;

typedef struct {
    int fd;
    int index;
    uint32_t next_stream; /* odd */
    size_t next_request;
    int in_flight;
    slot *slots; /* ring indexed by (stream >> 1) & ring_mask */
    uint32_t ring_mask;
    uint8_t *out;
    size_t out_capacity, out_start, out_end;
    int want_write; /* EPOLLOUT armed */
    uint8_t *in;
    size_t in_capacity, in_used;
    uint64_t answers;
    int closed;
} connection;

typedef struct {
    int id;
    pthread_t thread;
    int epoll;
    connection *connections;
    int count;
    histogram *latency;
    uint64_t status[CODES + 1];     /* measured calls */
    uint64_t status_all[CODES + 1]; /* every answer, warm-up included */
    char message[CODES + 1][MESSAGE_SAMPLE];
    uint64_t warmup_answers, late_answers;
    uint64_t bytes_sent, bytes_received, writes, reads, stalls;
    uint64_t unanswered;
    char error[512];
} worker;

static void fail(worker *w, const char *format, ...) {
    if (w->error[0]) return;
    va_list list;
    va_start(list, format);
    vsnprintf(w->error, sizeof w->error, format, list);
    va_end(list);
    failed = 1;
}

static int open_connection(void) {
    int fd;
    if (options.unix_path) {
        struct sockaddr_un address = {.sun_family = AF_UNIX};
        if (strlen(options.unix_path) >= sizeof address.sun_path) die("--unix path too long: %s", options.unix_path);
        strcpy(address.sun_path, options.unix_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof address) != 0)
            die("cannot connect to unix:%s: %s", options.unix_path, strerror(errno));
    } else {
        char host[256];
        const char *colon = strrchr(options.tcp, ':');
        if (!colon || colon == options.tcp || (size_t)(colon - options.tcp) >= sizeof host) die("--tcp wants HOST:PORT, not %s", options.tcp);
        memcpy(host, options.tcp, (size_t)(colon - options.tcp));
        host[colon - options.tcp] = 0;
        char *h = host;
        if (h[0] == '[' && h[strlen(h) - 1] == ']') { h[strlen(h) - 1] = 0; h++; }
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *found;
        int problem = getaddrinfo(h, colon + 1, &hints, &found);
        if (problem != 0) die("cannot resolve %s: %s", options.tcp, gai_strerror(problem));
        fd = -1;
        for (struct addrinfo *a = found; a; a = a->ai_next) {
            fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
            if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
            if (fd >= 0) close(fd);
            fd = -1;
        }
        freeaddrinfo(found);
        if (fd < 0) die("cannot connect to tcp:%s: %s", options.tcp, strerror(errno));
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) die("fcntl: %s", strerror(errno));
    return fd;
}

static void arm(worker *w, connection *c, int want_write) {
    if (c->want_write == want_write) return;
    struct epoll_event event = {.events = EPOLLIN | (want_write ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(w->epoll, EPOLL_CTL_MOD, c->fd, &event) != 0) fail(w, "epoll_ctl: %s", strerror(errno));
    c->want_write = want_write;
}

/* Writes what is queued; returns -1 on a fatal error. */
static int flush(worker *w, connection *c) {
    while (c->out_start < c->out_end) {
        ssize_t n = write(c->fd, c->out + c->out_start, c->out_end - c->out_start);
        if (n > 0) {
            w->writes++;
            w->bytes_sent += (uint64_t)n;
            c->out_start += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            arm(w, c, 1);
            return 0;
        }
        fail(w, "connection %d: write failed after %llu answers with %d calls in flight: %s", c->index,
             (unsigned long long)c->answers, c->in_flight, n < 0 ? strerror(errno) : "wrote nothing");
        return -1;
    }
    c->out_start = c->out_end = 0;
    arm(w, c, 0);
    return 0;
}

/* Queues calls until --pipeline are in flight, then writes them in one go. */
static int refill(worker *w, connection *c, uint64_t now) {
    if (now >= stop_ns || c->closed) return 0;
    if (c->out_start > 0 && c->out_start < c->out_end) {
        memmove(c->out, c->out + c->out_start, c->out_end - c->out_start);
        c->out_end -= c->out_start;
        c->out_start = 0;
    }
    int queued = 0;
    while (c->in_flight < options.pipeline) {
        slot *s = &c->slots[(c->next_stream >> 1) & c->ring_mask];
        if (s->stream != 0) { /* a much older call still holds this slot */
            w->stalls++;
            break;
        }
        const request *r = &requests[c->next_request];
        if (++c->next_request == request_count) c->next_request = 0;
        if (c->out_end + HEADER + r->length > c->out_capacity) break; /* cannot happen: sized for the pipeline */
        uint8_t *h = c->out + c->out_end;
        uint32_t length = r->length, stream = c->next_stream;
        h[0] = (uint8_t)(length >> 24); h[1] = (uint8_t)(length >> 16); h[2] = (uint8_t)(length >> 8); h[3] = (uint8_t)length;
        h[4] = (uint8_t)(stream >> 24); h[5] = (uint8_t)(stream >> 16); h[6] = (uint8_t)(stream >> 8); h[7] = (uint8_t)stream;
        h[8] = TYPE_REQUEST;
        h[9] = 0;
        memcpy(h + HEADER, r->data, length);
        c->out_end += HEADER + length;
        s->stream = stream;
        s->sent_ns = now;
        c->next_stream += 2;
        if (c->next_stream < 3) { /* 2^32 wrapped: ids must keep increasing */
            fail(w, "connection %d: stream ids exhausted", c->index);
            return -1;
        }
        c->in_flight++;
        queued++;
    }
    if (queued == 0 && c->out_start == c->out_end) return 0;
    if (c->want_write) return 0; /* the socket is full; EPOLLOUT will flush */
    return flush(w, c);
}

static inline uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads a varint; returns 0 on malformed input. */
static int varint(const uint8_t **p, const uint8_t *end, uint64_t *value) {
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) { *value = v; return 1; }
    }
    return 0;
}

/* Skips a field of the given wire type; returns 0 on malformed input. */
static int skip(const uint8_t **p, const uint8_t *end, unsigned wire) {
    uint64_t v;
    switch (wire) {
    case 0: return varint(p, end, &v);
    case 1: if (end - *p < 8) return 0; *p += 8; return 1;
    case 2: if (!varint(p, end, &v) || v > (uint64_t)(end - *p)) return 0; *p += v; return 1;
    case 5: if (end - *p < 4) return 0; *p += 4; return 1;
    default: return 0;
    }
}

/* The status code of a ttrpc.Response (field 1, google.rpc.Status, whose
 * field 1 is the code); -1 if the bytes are not a Response. */
static int response_code(const uint8_t *p, const uint8_t *end, int64_t *result, const uint8_t **message, size_t *message_length) {
    int64_t code = 0;
    *message = NULL;
    *message_length = 0;
    while (p < end) {
        uint64_t key;
        if (!varint(&p, end, &key)) return 0;
        unsigned field = (unsigned)(key >> 3), wire = (unsigned)(key & 7);
        if (field == 1 && wire == 2) {
            uint64_t length;
            if (!varint(&p, end, &length) || length > (uint64_t)(end - p)) return 0;
            const uint8_t *q = p, *status_end = p + length;
            p = status_end;
            while (q < status_end) {
                uint64_t k, v;
                if (!varint(&q, status_end, &k)) return 0;
                if (k == (1 << 3 | 0)) {
                    if (!varint(&q, status_end, &v)) return 0;
                    code = (int64_t)(int32_t)v;
                } else if (k == (2 << 3 | 2)) {
                    if (!varint(&q, status_end, &v) || v > (uint64_t)(status_end - q)) return 0;
                    *message = q;
                    *message_length = (size_t)v;
                    q += v;
                } else if (!skip(&q, status_end, (unsigned)(k & 7))) {
                    return 0;
                }
            }
        } else if (field == 0 || !skip(&p, end, wire)) {
            return 0;
        }
    }
    *result = code;
    return 1;
}

/* Parses every whole answer in the read buffer. */
static int parse(worker *w, connection *c, uint64_t now) {
    size_t at = 0;
    while (c->in_used - at >= HEADER) {
        const uint8_t *h = c->in + at;
        uint32_t length = be32(h), stream = be32(h + 4);
        uint8_t type = h[8];
        if (length > options.max_frame) {
            fail(w, "connection %d: an answer declares %u bytes, above --max-frame %u (stream %u, type %u)", c->index,
                 length, options.max_frame, stream, type);
            return -1;
        }
        if (type != TYPE_RESPONSE) {
            fail(w, "connection %d: a frame of type %u (not a response) on stream %u", c->index, type, stream);
            return -1;
        }
        if (c->in_used - at < HEADER + (size_t)length) {
            if (HEADER + (size_t)length > c->in_capacity) { /* rare: a long answer; grow once, outside the steady state */
                size_t capacity = c->in_capacity;
                while (capacity < HEADER + (size_t)length) capacity *= 2;
                uint8_t *bigger = realloc(c->in, capacity);
                if (!bigger) { fail(w, "out of memory for a %u-byte answer", length); return -1; }
                c->in = bigger;
                c->in_capacity = capacity;
            }
            break;
        }
        slot *s = &c->slots[(stream >> 1) & c->ring_mask];
        if ((stream & 1) == 0 || s->stream != stream) {
            fail(w, "connection %d: an answer for stream %u, which is not in flight (next stream %u, %d in flight)",
                 c->index, stream, c->next_stream, c->in_flight);
            return -1;
        }
        const uint8_t *message;
        size_t message_length;
        int64_t code;
        if (!response_code(h + HEADER, h + HEADER + length, &code, &message, &message_length)) {
            fail(w, "connection %d: stream %u: %u bytes that are not a ttrpc.Response", c->index, stream, length);
            return -1;
        }
        unsigned index = code >= 0 && code < CODES ? (unsigned)code : CODES;
        w->status_all[index]++;
        if (index != 0 && !w->message[index][0]) {
            size_t n = message_length < MESSAGE_SAMPLE - 1 ? message_length : MESSAGE_SAMPLE - 1;
            if (n == 0) { memcpy(w->message[index], "(no message)", 13); }
            else { memcpy(w->message[index], message, n); w->message[index][n] = 0; }
        }
        uint64_t sent = s->sent_ns;
        if (sent < measure_ns) {
            w->warmup_answers++;
        } else if (sent < stop_ns) {
            record(w->latency, now > sent ? now - sent : 0);
            w->status[index]++;
        } else {
            w->late_answers++; /* cannot happen: nothing is sent after stop */
        }
        s->stream = 0;
        c->in_flight--;
        c->answers++;
        at += HEADER + length;
    }
    if (at > 0) {
        memmove(c->in, c->in + at, c->in_used - at);
        c->in_used -= at;
    }
    return 0;
}

static int readable(worker *w, connection *c) {
    for (;;) {
        size_t space = c->in_capacity - c->in_used;
        ssize_t n = read(c->fd, c->in + c->in_used, space);
        if (n > 0) {
            w->reads++;
            w->bytes_received += (uint64_t)n;
            c->in_used += (size_t)n;
            if (parse(w, c, now_ns()) != 0) return -1;
            if ((size_t)n < space) return 0; /* drained; level-triggered epoll tells of more */
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        c->closed = 1;
        fail(w, "connection %d: orgd closed it (%s) after %llu answers, with %d calls in flight%s", c->index,
             n == 0 ? "end of stream" : strerror(errno), (unsigned long long)c->answers, c->in_flight,
             c->in_used ? " and part of an answer read" : "");
        return -1;
    }
}

static void *run_worker(void *argument) {
    worker *w = argument;
    struct epoll_event events[256];
    uint64_t now = now_ns();
    for (int i = 0; i < w->count && !failed; i++) refill(w, &w->connections[i], now);
    uint64_t drain_until = 0;
    while (!failed) {
        now = now_ns();
        int busy = 0;
        for (int i = 0; i < w->count; i++) busy += w->connections[i].in_flight;
        if (now >= stop_ns) {
            if (busy == 0) break;
            if (drain_until == 0) drain_until = now + (uint64_t)(options.drain * 1e9);
            if (now >= drain_until) {
                w->unanswered = (uint64_t)busy;
                fail(w, "%d calls still unanswered %.1f s after the end of the run", busy, options.drain);
                break;
            }
        }
        uint64_t next = now < measure_ns ? measure_ns : now < stop_ns ? stop_ns : drain_until;
        int timeout = (int)((next - now) / 1000000u) + 1;
        if (timeout > 100) timeout = 100;
        int ready = epoll_wait(w->epoll, events, 256, timeout);
        if (ready < 0) {
            if (errno == EINTR) continue;
            fail(w, "epoll_wait: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < ready && !failed; i++) {
            connection *c = events[i].data.ptr;
            if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                if (readable(w, c) != 0) break;
            }
            if ((events[i].events & EPOLLOUT) && flush(w, c) != 0) break;
        }
        /* Refill every connection that answered: one write each. */
        now = now_ns();
        for (int i = 0; i < ready && !failed; i++) {
            connection *c = events[i].data.ptr;
            if (c->in_flight < options.pipeline) refill(w, c, now);
        }
    }
    return NULL;
}

/* ---- input ---------------------------------------------------------- */

static void load_requests(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("cannot open --requests %s: %s", path, strerror(errno));
    struct stat info;
    if (fstat(fd, &info) != 0) die("stat %s: %s", path, strerror(errno));
    size_t size = (size_t)info.st_size;
    uint8_t *bytes = malloc(size ? size : 1);
    if (!bytes) die("out of memory");
    for (size_t done = 0; done < size;) {
        ssize_t n = read(fd, bytes + done, size - done);
        if (n <= 0) die("reading %s: %s", path, n < 0 ? strerror(errno) : "short read");
        done += (size_t)n;
    }
    close(fd);
    size_t count = 0;
    for (size_t at = 0; at < size;) {
        if (size - at < 4) die("%s: %zu stray bytes at its end (each request needs a 4-byte length first)", path, size - at);
        uint32_t length = be32(bytes + at);
        if (length > options.max_frame) die("%s: request %zu is %u bytes, above --max-frame %u", path, count, length, options.max_frame);
        if (length > size - at - 4) die("%s: request %zu declares %u bytes but the file ends first", path, count, length);
        at += 4 + length;
        count++;
    }
    if (count == 0) die("%s holds no requests", path);
    requests = calloc(count, sizeof *requests);
    if (!requests) die("out of memory");
    size_t at = 0;
    for (size_t i = 0; i < count; i++) {
        requests[i].length = be32(bytes + at);
        requests[i].data = bytes + at + 4;
        if (requests[i].length > longest_request) longest_request = requests[i].length;
        at += 4 + requests[i].length;
    }
    request_count = count;
    request_bytes = bytes;
}

/* ---- report --------------------------------------------------------- */

/* Sleeps until `deadline` (CLOCK_MONOTONIC ns), waking early if a worker failed. */
static void sleep_until(uint64_t deadline) {
    for (;;) {
        uint64_t now = now_ns();
        if (failed || now >= deadline) return;
        uint64_t step = deadline - now < 50000000u ? deadline - now : 50000000u;
        struct timespec pause = {0, (long)step};
        nanosleep(&pause, NULL);
    }
}

static double seconds_of(struct timeval t) { return (double)t.tv_sec + (double)t.tv_usec / 1e6; }

static void usage(void) {
    fputs("usage: loadgen (--unix PATH | --tcp HOST:PORT) --requests FILE [--connections N] [--pipeline P]\n"
          "               [--duration S] [--warmup S] [--threads T] [--drain S] [--max-frame BYTES] [--json]\n"
          "FILE: serialized ttrpc.Request messages, each after its u32 big-endian length.\n",
          stderr);
    exit(1);
}

static double number(const char *option, const char *text, double low) {
    char *end;
    double value = strtod(text, &end);
    if (*text == 0 || *end != 0 || !(value >= low)) die("%s wants a number ≥ %g, not %s", option, low, text);
    return value;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) { options.json = 1; continue; }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) usage();
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--unix")) options.unix_path = v;
        else if (!strcmp(a, "--tcp")) options.tcp = v;
        else if (!strcmp(a, "--requests")) options.requests_file = v;
        else if (!strcmp(a, "--connections") || !strcmp(a, "-c")) options.connections = (int)number(a, v, 1);
        else if (!strcmp(a, "--pipeline") || !strcmp(a, "-P")) options.pipeline = (int)number(a, v, 1);
        else if (!strcmp(a, "--threads")) options.threads = (int)number(a, v, 1);
        else if (!strcmp(a, "--duration")) options.duration = number(a, v, 0.001);
        else if (!strcmp(a, "--warmup")) options.warmup = number(a, v, 0);
        else if (!strcmp(a, "--drain")) options.drain = number(a, v, 0.001);
        else if (!strcmp(a, "--max-frame")) options.max_frame = (uint32_t)number(a, v, 16);
        else { fprintf(stderr, "loadgen: unknown option %s\n", a); usage(); }
    }
    if (!options.unix_path == !options.tcp) die("give one of --unix PATH and --tcp HOST:PORT");
    if (!options.requests_file) die("--requests FILE is required");
    if (options.pipeline > 65536) die("--pipeline at most 65536");
    if (options.threads > options.connections) options.threads = options.connections;
    signal(SIGPIPE, SIG_IGN);
    load_requests(options.requests_file);

    /* Everything is allocated here, before the clock starts. */
    worker *workers = calloc((size_t)options.threads, sizeof *workers);
    connection *connections = calloc((size_t)options.connections, sizeof *connections);
    if (!workers || !connections) die("out of memory");
    uint32_t ring = 64;
    while (ring < 4u * (uint32_t)options.pipeline) ring *= 2;
    for (int t = 0; t < options.threads; t++) {
        worker *w = &workers[t];
        w->id = t;
        w->latency = calloc(1, sizeof *w->latency);
        if (!w->latency) die("out of memory");
        w->latency->min_ns = UINT64_MAX;
        w->epoll = epoll_create1(EPOLL_CLOEXEC);
        if (w->epoll < 0) die("epoll_create1: %s", strerror(errno));
    }
    /* Connection i goes to worker i % threads; each worker's are contiguous. */
    {
        int at = 0;
        for (int t = 0; t < options.threads; t++) {
            worker *w = &workers[t];
            w->connections = connections + at;
            for (int i = t; i < options.connections; i += options.threads, at++) {
                connection *c = &connections[at];
                c->index = i;
                c->fd = open_connection();
                c->next_stream = 1;
                c->next_request = (size_t)((uint64_t)i * request_count / (uint64_t)options.connections);
                c->ring_mask = ring - 1;
                c->slots = calloc(ring, sizeof *c->slots);
                c->out_capacity = (size_t)options.pipeline * (HEADER + longest_request);
                c->out = malloc(c->out_capacity);
                c->in_capacity = 64 * 1024;
                c->in = malloc(c->in_capacity);
                if (!c->slots || !c->out || !c->in) die("out of memory");
                struct epoll_event event = {.events = EPOLLIN, .data.ptr = c};
                if (epoll_ctl(w->epoll, EPOLL_CTL_ADD, c->fd, &event) != 0) die("epoll_ctl: %s", strerror(errno));
                w->count++;
            }
        }
    }

    struct rusage usage_start, usage_measure, usage_stop, usage_end;
    getrusage(RUSAGE_SELF, &usage_start);
    start_ns = now_ns();
    measure_ns = start_ns + (uint64_t)(options.warmup * 1e9);
    stop_ns = measure_ns + (uint64_t)(options.duration * 1e9);
    for (int t = 0; t < options.threads; t++)
        if (pthread_create(&workers[t].thread, NULL, run_worker, &workers[t]) != 0) die("pthread_create failed");

    /* The main thread only samples CPU at the window's edges. */
    sleep_until(measure_ns);
    getrusage(RUSAGE_SELF, &usage_measure);
    sleep_until(stop_ns);
    getrusage(RUSAGE_SELF, &usage_stop);
    for (int t = 0; t < options.threads; t++) pthread_join(workers[t].thread, NULL);
    getrusage(RUSAGE_SELF, &usage_end);
    uint64_t end_ns = now_ns();

    histogram *all = calloc(1, sizeof *all);
    if (!all) die("out of memory");
    all->min_ns = UINT64_MAX;
    uint64_t status[CODES + 1] = {0}, status_all[CODES + 1] = {0};
    uint64_t warmup_answers = 0, bytes_sent = 0, bytes_received = 0, writes = 0, reads = 0, stalls = 0, unanswered = 0;
    const char *messages[CODES + 1] = {0};
    const char *error = NULL;
    for (int t = 0; t < options.threads; t++) {
        worker *w = &workers[t];
        merge(all, w->latency);
        for (int k = 0; k <= CODES; k++) {
            status[k] += w->status[k];
            status_all[k] += w->status_all[k];
            if (!messages[k] && w->message[k][0]) messages[k] = w->message[k];
        }
        warmup_answers += w->warmup_answers;
        bytes_sent += w->bytes_sent;
        bytes_received += w->bytes_received;
        writes += w->writes;
        reads += w->reads;
        stalls += w->stalls;
        unanswered += w->unanswered;
        if (!error && w->error[0]) error = w->error;
    }
    uint64_t bad = 0;
    for (int k = 1; k <= CODES; k++) bad += status_all[k];
    if (error) fprintf(stderr, "loadgen: %s\n", error);

    double measured_cpu_user = seconds_of(usage_stop.ru_utime) - seconds_of(usage_measure.ru_utime);
    double measured_cpu_sys = seconds_of(usage_stop.ru_stime) - seconds_of(usage_measure.ru_stime);
    double total_cpu_user = seconds_of(usage_end.ru_utime) - seconds_of(usage_start.ru_utime);
    double total_cpu_sys = seconds_of(usage_end.ru_stime) - seconds_of(usage_start.ru_stime);
    double wall = (double)(end_ns - start_ns) / 1e9;
    double calls = (double)all->total;
    double p50 = percentile_ns(all, 50) / 1e3, p90 = percentile_ns(all, 90) / 1e3, p99 = percentile_ns(all, 99) / 1e3,
           p999 = percentile_ns(all, 99.9) / 1e3, max = (double)all->max_ns / 1e3;
    double mean = all->total ? (double)all->sum_ns / (double)all->total / 1e3 : 0;
    double min = all->total ? (double)all->min_ns / 1e3 : 0;
    char target[600];
    snprintf(target, sizeof target, "%s:%s", options.unix_path ? "unix" : "tcp", options.unix_path ? options.unix_path : options.tcp);

    if (options.json) {
        printf("{\n  \"tool\": \"loadgen\",\n  \"target\": \"");
        for (const char *p = target; *p; p++) { if (*p == '"' || *p == '\\') putchar('\\'); putchar(*p); }
        printf("\",\n  \"connections\": %d,\n  \"inFlight\": %d,\n  \"threads\": %d,\n", options.connections, options.pipeline, options.threads);
        printf("  \"distinctRequests\": %zu,\n  \"seconds\": %.6f,\n  \"warmupSeconds\": %.6f,\n", request_count, options.duration, options.warmup);
        printf("  \"calls\": %llu,\n  \"callsPerSecond\": %.3f,\n", (unsigned long long)all->total, calls / options.duration);
        printf("  \"latencyMicroseconds\": {\"min\": %.3f, \"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, \"p999\": %.3f, \"max\": %.3f, \"mean\": %.3f},\n",
               min, p50, p90, p99, p999, max, mean);
        const uint64_t *tables[2] = {status, status_all};
        const char *table_names[2] = {"status", "statusAllAnswers"};
        for (int t = 0; t < 2; t++) {
            printf("  \"%s\": {", table_names[t]);
            int first = 1;
            for (int k = 0; k <= CODES; k++) {
                if (!tables[t][k]) continue;
                printf("%s\"%s\": %llu", first ? "" : ", ", k < CODES ? code_names[k] : "OTHER", (unsigned long long)tables[t][k]);
                first = 0;
            }
            printf("},\n");
        }
        printf("  \"statusMessages\": {");
        int first = 1;
        for (int k = 1; k <= CODES; k++) {
            if (!messages[k]) continue;
            printf("%s\"%s\": \"", first ? "" : ", ", k < CODES ? code_names[k] : "OTHER");
            for (const unsigned char *p = (const unsigned char *)messages[k]; *p; p++) {
                if (*p == '"' || *p == '\\') printf("\\%c", *p);
                else if (*p < 0x20) printf("\\u%04x", *p);
                else putchar(*p);
            }
            putchar('"');
            first = 0;
        }
        printf("},\n  \"warmupAnswers\": %llu,\n  \"unanswered\": %llu,\n", (unsigned long long)warmup_answers, (unsigned long long)unanswered);
        printf("  \"bytesSent\": %llu,\n  \"bytesReceived\": %llu,\n  \"writes\": %llu,\n  \"reads\": %llu,\n  \"stalls\": %llu,\n",
               (unsigned long long)bytes_sent, (unsigned long long)bytes_received, (unsigned long long)writes,
               (unsigned long long)reads, (unsigned long long)stalls);
        printf("  \"cpu\": {\"userSeconds\": %.4f, \"systemSeconds\": %.4f, \"percentOfCore\": %.2f},\n", measured_cpu_user,
               measured_cpu_sys, 100.0 * (measured_cpu_user + measured_cpu_sys) / options.duration);
        printf("  \"cpuWholeRun\": {\"userSeconds\": %.4f, \"systemSeconds\": %.4f, \"wallSeconds\": %.4f, \"percentOfCore\": %.2f},\n",
               total_cpu_user, total_cpu_sys, wall, 100.0 * (total_cpu_user + total_cpu_sys) / wall);
        printf("  \"error\": ");
        if (error) {
            putchar('"');
            for (const char *p = error; *p; p++) { if (*p == '"' || *p == '\\') putchar('\\'); putchar(*p); }
            putchar('"');
        } else {
            printf("null");
        }
        printf("\n}\n");
    } else {
        printf("%s, %d connection(s) x %d in flight, %d thread(s), %zu distinct requests\n", target, options.connections,
               options.pipeline, options.threads, request_count);
        printf("%llu calls in %.2f s: %.0f calls/s (after %.2f s of warm-up)\n", (unsigned long long)all->total,
               options.duration, calls / options.duration, options.warmup);
        printf("latency us: p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  (mean %.1f, min %.1f)\n", p50, p90, p99, p999,
               max, mean, min);
        printf("status:");
        for (int k = 0; k <= CODES; k++)
            if (status_all[k]) printf(" %s %llu", k < CODES ? code_names[k] : "OTHER", (unsigned long long)status_all[k]);
        printf(" (every answer, warm-up included)\n");
        for (int k = 1; k <= CODES; k++)
            if (messages[k]) printf("  %s, e.g.: %s\n", k < CODES ? code_names[k] : "OTHER", messages[k]);
        printf("loadgen CPU while measuring: user %.2f s + system %.2f s = %.1f %% of one core; %.2f writes and %.2f reads per call\n",
               measured_cpu_user, measured_cpu_sys, 100.0 * (measured_cpu_user + measured_cpu_sys) / options.duration,
               calls ? (double)writes / (double)(all->total + warmup_answers) : 0,
               calls ? (double)reads / (double)(all->total + warmup_answers) : 0);
    }
    fflush(stdout);
    int result = error ? 2 : bad ? 3 : 0;
    if (!error && bad) fprintf(stderr, "loadgen: %llu answers were not OK\n", (unsigned long long)bad);
    for (int i = 0; i < options.connections; i++) {
        close(connections[i].fd);
        free(connections[i].slots);
        free(connections[i].out);
        free(connections[i].in);
    }
    for (int t = 0; t < options.threads; t++) {
        close(workers[t].epoll);
        free(workers[t].latency);
    }
    free(connections);
    free(workers);
    free(all);
    free(request_bytes);
    free(requests);
    return result;
}
