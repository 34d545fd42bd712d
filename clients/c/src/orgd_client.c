/* orgd_client: see include/orgd_client.h. */
#define _GNU_SOURCE
#include "orgd_client.h"
#include "orgd_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "ttrpc/ttrpc.pb-c.h"

#define HEADER_SIZE 10
#define TYPE_REQUEST 0x01
#define TYPE_RESPONSE 0x02
/* A TLS handshake must finish within this long. */
#define HANDSHAKE_MS 10000

/* An answer that arrived for a stream other than the one being waited for. */
typedef struct stashed {
    uint32_t stream_id;
    int err;
    orgd_response response;
    struct stashed *next;
} stashed;

struct orgd_conn {
    int fd;
    uint32_t next_stream_id;
    size_t max_frame;
    char *authorization;
    uint32_t *in_flight;    /* stream ids sent and not yet collected */
    size_t in_flight_count, in_flight_capacity;
    stashed *stash;
    int broken;             /* after an I/O or protocol error the stream is out of step */
    SSL *ssl;               /* TLS, when connected with orgd_connect_tls (the socket is then non-blocking) */
    SSL_CTX *ssl_ctx;
};

static _Thread_local char tls_error[256];

const char *orgd_tls_error(void) {
    return tls_error;
}

/* Records why TLS failed: `what`, then OpenSSL's reasons, if it queued any. */
static void record_tls_error(SSL *ssl, const char *what) {
    size_t used = (size_t)snprintf(tls_error, sizeof tls_error, "%s", what);
    if (ssl && SSL_get_verify_result(ssl) != X509_V_OK && used < sizeof tls_error)
        used += (size_t)snprintf(tls_error + used, sizeof tls_error - used, ": certificate: %s",
                                 X509_verify_cert_error_string(SSL_get_verify_result(ssl)));
    unsigned long code;
    while ((code = ERR_get_error()) != 0 && used + 3 < sizeof tls_error) {
        char reason[160];
        ERR_error_string_n(code, reason, sizeof reason);
        used += (size_t)snprintf(tls_error + used, sizeof tls_error - used, ": %s", reason);
    }
    ERR_clear_error();
}

/* OpenSSL writes with write(2), which raises SIGPIPE on a socket the server
   closed; a library must not kill its host for that. SIGPIPE is blocked on
   this thread around TLS I/O and one raised meanwhile is consumed. */
typedef struct {
    sigset_t pipe_set, old;
    int was_pending;
} pipe_guard;

static int sigpipe_pending(void) {
    sigset_t pending;
    sigpending(&pending);
    return sigismember(&pending, SIGPIPE);
}

static void pipe_guard_begin(pipe_guard *guard) {
    sigemptyset(&guard->pipe_set);
    sigaddset(&guard->pipe_set, SIGPIPE);
    guard->was_pending = sigpipe_pending();
    pthread_sigmask(SIG_BLOCK, &guard->pipe_set, &guard->old);
}

static void pipe_guard_end(pipe_guard *guard) {
    if (!guard->was_pending && sigpipe_pending()) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&guard->pipe_set, NULL, &zero) < 0 && errno == EINTR) {}
    }
    pthread_sigmask(SIG_SETMASK, &guard->old, NULL);
}

const char *orgd_strerror(int err) {
    switch (err) {
    case ORGD_OK: return "ok";
    case ORGD_E_ARG: return "bad argument";
    case ORGD_E_CONNECT: return "cannot connect";
    case ORGD_E_IO: return "read or write failed";
    case ORGD_E_CLOSED: return "connection closed by the server";
    case ORGD_E_TIMEOUT: return "no answer before the deadline";
    case ORGD_E_PROTOCOL: return "the server sent something that is not ttrpc";
    case ORGD_E_TOO_LARGE: return "the answer is larger than the frame limit";
    case ORGD_E_NOMEM: return "out of memory";
    case ORGD_E_NO_CALL: return "no call in flight has this stream id";
    case ORGD_E_TLS: return "TLS failed (see orgd_tls_error())";
    default: return "unknown error";
    }
}

static void set_err(int *err, int value) {
    if (err) *err = value;
}

orgd_conn *orgd_from_fd(int fd, int *err) {
    if (fd < 0) {
        set_err(err, ORGD_E_ARG);
        return NULL;
    }
    orgd_conn *conn = calloc(1, sizeof *conn);
    if (!conn) {
        set_err(err, ORGD_E_NOMEM);
        return NULL;
    }
    conn->fd = fd;
    conn->next_stream_id = 1;
    conn->max_frame = ORGD_DEFAULT_MAX_FRAME;
    set_err(err, ORGD_OK);
    return conn;
}

orgd_conn *orgd_connect_unix(const char *path, int *err) {
    struct sockaddr_un address;
    if (!path || strlen(path) >= sizeof address.sun_path) {
        set_err(err, ORGD_E_ARG);
        return NULL;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        set_err(err, ORGD_E_CONNECT);
        return NULL;
    }
    memset(&address, 0, sizeof address);
    address.sun_family = AF_UNIX;
    strcpy(address.sun_path, path);
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        close(fd);
        set_err(err, ORGD_E_CONNECT);
        return NULL;
    }
    orgd_conn *conn = orgd_from_fd(fd, err);
    if (!conn) close(fd);
    return conn;
}

/* A connected TCP socket, or -1 with *err set. */
static int tcp_socket(const char *host, uint16_t port, int *err) {
    if (!host) {
        set_err(err, ORGD_E_ARG);
        return -1;
    }
    char service[8];
    snprintf(service, sizeof service, "%u", (unsigned)port);
    struct addrinfo hints, *results = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, service, &hints, &results) != 0) {
        set_err(err, ORGD_E_CONNECT);
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *candidate = results; candidate; candidate = candidate->ai_next) {
        fd = socket(candidate->ai_family, candidate->ai_socktype | SOCK_CLOEXEC, candidate->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, candidate->ai_addr, candidate->ai_addrlen) == 0) break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(results);
    if (fd < 0) set_err(err, ORGD_E_CONNECT);
    return fd;
}

orgd_conn *orgd_connect_tcp(const char *host, uint16_t port, int *err) {
    int fd = tcp_socket(host, port, err);
    if (fd < 0) return NULL;
    orgd_conn *conn = orgd_from_fd(fd, err);
    if (!conn) close(fd);
    return conn;
}

static int64_t now_ms(void);
static int wait_fd(int fd, short events, int64_t deadline);
static int wait_tls(int fd, int why, int64_t deadline);

/* The TLS context for these options, or NULL with tls_error set. */
static SSL_CTX *tls_context(const orgd_tls_options *tls) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        record_tls_error(NULL, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    const char *failed = NULL;
    if (tls->ca_file ? SSL_CTX_load_verify_locations(ctx, tls->ca_file, NULL) != 1
                     : SSL_CTX_set_default_verify_paths(ctx) != 1)
        failed = "cannot load the trusted CAs (ca_file)";
    else if (tls->cert_file && SSL_CTX_use_certificate_chain_file(ctx, tls->cert_file) != 1)
        failed = "cannot load the client certificate (cert_file)";
    else if (tls->key_file && SSL_CTX_use_PrivateKey_file(ctx, tls->key_file, SSL_FILETYPE_PEM) != 1)
        failed = "cannot load the client key (key_file)";
    else if (tls->cert_file && SSL_CTX_check_private_key(ctx) != 1)
        failed = "the client key does not match the certificate";
    if (failed) {
        record_tls_error(NULL, failed);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

orgd_conn *orgd_connect_tls(const char *host, uint16_t port, const orgd_tls_options *tls, int *err) {
    tls_error[0] = 0;
    if (!host || !tls || !tls->cert_file != !tls->key_file) {
        set_err(err, ORGD_E_ARG);
        return NULL;
    }
    SSL_CTX *ctx = tls_context(tls);
    if (!ctx) {
        set_err(err, ORGD_E_TLS);
        return NULL;
    }
    int fd = tcp_socket(host, port, err);
    if (fd < 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    orgd_conn *conn = orgd_from_fd(fd, err);
    SSL *ssl = conn ? SSL_new(ctx) : NULL;
    if (!ssl) {
        if (conn) orgd_close(conn); else close(fd);
        SSL_CTX_free(ctx);
        set_err(err, ORGD_E_NOMEM);
        return NULL;
    }
    conn->ssl = ssl;
    conn->ssl_ctx = ctx;
    /* The name (or address) the server's certificate must carry. */
    const char *name = tls->server_name ? tls->server_name : host;
    unsigned char address[16];
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
    int named = 1;
    if (inet_pton(AF_INET, name, address) == 1 || inet_pton(AF_INET6, name, address) == 1) {
        named = X509_VERIFY_PARAM_set1_ip_asc(param, name) == 1;
    } else {
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        named = X509_VERIFY_PARAM_set1_host(param, name, 0) == 1 && SSL_set_tlsext_host_name(ssl, name) == 1;
    }
    int flags = fcntl(fd, F_GETFL);
    if (!named || flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0 || SSL_set_fd(ssl, fd) != 1) {
        record_tls_error(ssl, "cannot set up TLS on the socket");
        orgd_close(conn);
        set_err(err, ORGD_E_TLS);
        return NULL;
    }
    int64_t deadline = now_ms() + HANDSHAKE_MS;
    pipe_guard guard;
    pipe_guard_begin(&guard);
    int result = ORGD_OK;
    for (;;) {
        ERR_clear_error();
        int done = SSL_connect(ssl);
        if (done == 1) break;
        int waited = wait_tls(fd, SSL_get_error(ssl, done), deadline);
        if (waited == ORGD_OK) continue;
        if (waited == ORGD_E_TLS)
            record_tls_error(ssl, "TLS handshake failed");
        else
            snprintf(tls_error, sizeof tls_error, "the TLS handshake did not finish within %d ms", HANDSHAKE_MS);
        result = ORGD_E_TLS;
        break;
    }
    pipe_guard_end(&guard);
    if (result != ORGD_OK) {
        orgd_close(conn);
        set_err(err, result);
        return NULL;
    }
    return conn;
}

int orgd_is_open(orgd_conn *conn) {
    if (!conn || conn->broken) return 0;
    if (conn->ssl) return 1;
    struct pollfd entry = {.fd = conn->fd, .events = POLLIN};
    if (poll(&entry, 1, 0) <= 0) return 1;
    if (entry.revents & (POLLERR | POLLNVAL)) return 0;
    /* Readable: an answer nobody collected yet, or the end of the stream. */
    uint8_t byte;
    ssize_t peeked = recv(conn->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return peeked > 0 || (peeked < 0 && (errno == EAGAIN || errno == EINTR));
}

int orgd_set_token(orgd_conn *conn, const char *token) {
    if (!conn) return ORGD_E_ARG;
    free(conn->authorization);
    conn->authorization = NULL;
    if (!token) return ORGD_OK;
    size_t length = strlen(token) + sizeof "Bearer ";
    conn->authorization = malloc(length);
    if (!conn->authorization) return ORGD_E_NOMEM;
    snprintf(conn->authorization, length, "Bearer %s", token);
    return ORGD_OK;
}

void orgd_set_max_frame(orgd_conn *conn, size_t max_frame) {
    if (conn && max_frame > 0) conn->max_frame = max_frame;
}

void orgd_response_free(orgd_response *response) {
    if (!response) return;
    free(response->message);
    free(response->payload);
    free(response->consistency_token);
    memset(response, 0, sizeof *response);
}

void orgd_close(orgd_conn *conn) {
    if (!conn) return;
    if (conn->ssl) {
        /* Say goodbye if the socket takes it at once; never wait for the reply. */
        if (!conn->broken && SSL_is_init_finished(conn->ssl)) {
            pipe_guard guard;
            pipe_guard_begin(&guard);
            SSL_shutdown(conn->ssl);
            pipe_guard_end(&guard);
        }
        SSL_free(conn->ssl);
        SSL_CTX_free(conn->ssl_ctx);
        ERR_clear_error();
    }
    close(conn->fd);
    while (conn->stash) {
        stashed *next = conn->stash->next;
        orgd_response_free(&conn->stash->response);
        free(conn->stash);
        conn->stash = next;
    }
    free(conn->in_flight);
    free(conn->authorization);
    free(conn);
}

/* ---- the frame codec ---- */

static void put_u32(uint8_t *at, uint32_t value) {
    at[0] = (uint8_t)(value >> 24);
    at[1] = (uint8_t)(value >> 16);
    at[2] = (uint8_t)(value >> 8);
    at[3] = (uint8_t)value;
}

static uint32_t get_u32(const uint8_t *at) {
    return ((uint32_t)at[0] << 24) | ((uint32_t)at[1] << 16) | ((uint32_t)at[2] << 8) | (uint32_t)at[3];
}

int orgd_encode_request(uint32_t stream_id, const char *service, const char *method,
                        const uint8_t *payload, size_t payload_len,
                        const orgd_metadata *metadata, size_t metadata_count,
                        int64_t timeout_nano, uint8_t **frame, size_t *frame_len) {
    if (!service || !method || !frame || !frame_len || (payload_len && !payload) || (metadata_count && !metadata)) return ORGD_E_ARG;
    Ttrpc__Request request = TTRPC__REQUEST__INIT;
    request.service = (char *)service;
    request.method = (char *)method;
    request.payload.data = (uint8_t *)payload;
    request.payload.len = payload_len;
    request.timeout_nano = timeout_nano;
    Ttrpc__KeyValue *entries = NULL;
    Ttrpc__KeyValue **pointers = NULL;
    if (metadata_count) {
        entries = calloc(metadata_count, sizeof *entries);
        pointers = calloc(metadata_count, sizeof *pointers);
        if (!entries || !pointers) {
            free(entries);
            free(pointers);
            return ORGD_E_NOMEM;
        }
        for (size_t i = 0; i < metadata_count; i++) {
            ttrpc__key_value__init(&entries[i]);
            entries[i].key = (char *)(metadata[i].key ? metadata[i].key : "");
            entries[i].value = (char *)(metadata[i].value ? metadata[i].value : "");
            pointers[i] = &entries[i];
        }
        request.n_metadata = metadata_count;
        request.metadata = pointers;
    }
    size_t body = ttrpc__request__get_packed_size(&request);
    int result = ORGD_OK;
    if (body > UINT32_MAX) {
        result = ORGD_E_TOO_LARGE;
    } else if (!(*frame = malloc(HEADER_SIZE + body))) {
        result = ORGD_E_NOMEM;
    } else {
        put_u32(*frame, (uint32_t)body);
        put_u32(*frame + 4, stream_id);
        (*frame)[8] = TYPE_REQUEST;
        (*frame)[9] = 0;
        ttrpc__request__pack(&request, *frame + HEADER_SIZE);
        *frame_len = HEADER_SIZE + body;
    }
    free(entries);
    free(pointers);
    return result;
}

/* Decodes a Response envelope's bytes into *out. */
static int decode_envelope(const uint8_t *data, size_t length, orgd_response *out) {
    memset(out, 0, sizeof *out);
    Ttrpc__Response *response = ttrpc__response__unpack(NULL, length, data);
    if (!response) return ORGD_E_PROTOCOL;
    const char *message = "";
    if (response->status) {
        out->code = response->status->code;
        if (response->status->message) message = response->status->message;
    }
    out->message = strdup(message);
    if (response->payload.len) {
        out->payload = malloc(response->payload.len);
        if (out->payload) {
            memcpy(out->payload, response->payload.data, response->payload.len);
            out->payload_len = response->payload.len;
        }
    }
    int failed = !out->message || (response->payload.len && !out->payload);
    for (size_t i = 0; i < response->n_metadata && !failed; i++) {
        const Ttrpc__KeyValue *entry = response->metadata[i];
        if (entry->key && entry->value && strcmp(entry->key, ORGD_CONSISTENCY_TOKEN_KEY) == 0 && !out->consistency_token) {
            out->consistency_token = strdup(entry->value);
            failed = !out->consistency_token;
        }
    }
    ttrpc__response__free_unpacked(response, NULL);
    if (failed) {
        orgd_response_free(out);
        return ORGD_E_NOMEM;
    }
    return ORGD_OK;
}

int orgd_decode_response(const uint8_t *frame, size_t frame_len, uint32_t *stream_id, orgd_response *out) {
    if (!frame || !out || frame_len < HEADER_SIZE) return ORGD_E_ARG;
    uint32_t length = get_u32(frame);
    if (frame[8] != TYPE_RESPONSE || (size_t)length != frame_len - HEADER_SIZE) return ORGD_E_PROTOCOL;
    if (stream_id) *stream_id = get_u32(frame + 4);
    return decode_envelope(frame + HEADER_SIZE, length, out);
}

/* ---- I/O ---- */

static int64_t now_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Waits until fd is ready for `events`, or the deadline (< 0: none) passes. */
static int wait_fd(int fd, short events, int64_t deadline) {
    for (;;) {
        int wait = -1;
        if (deadline >= 0) {
            int64_t left = deadline - now_ms();
            if (left <= 0) return ORGD_E_TIMEOUT;
            wait = left > 60000 ? 60000 : (int)left;
        }
        struct pollfd poller = {.fd = fd, .events = events};
        int ready = poll(&poller, 1, wait);
        if (ready > 0) return ORGD_OK;
        if (ready < 0 && errno != EINTR) return ORGD_E_IO;
    }
}

/* After an OpenSSL call said `why`: waits for the socket when OpenSSL wants to
   read or write (ORGD_OK, or ORGD_E_TIMEOUT / ORGD_E_IO); ORGD_E_TLS when
   `why` is not a wish to wait. */
static int wait_tls(int fd, int why, int64_t deadline) {
    if (why == SSL_ERROR_WANT_READ) return wait_fd(fd, POLLIN, deadline);
    if (why == SSL_ERROR_WANT_WRITE) return wait_fd(fd, POLLOUT, deadline);
    return ORGD_E_TLS;
}

/* What an SSL_read/SSL_write failure means for the caller. */
static int tls_failure(orgd_conn *conn, int why) {
    if (why == SSL_ERROR_ZERO_RETURN) return ORGD_E_CLOSED;
    if (why == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        ERR_clear_error();
        return errno == 0 || errno == EPIPE || errno == ECONNRESET ? ORGD_E_CLOSED : ORGD_E_IO;
    }
    record_tls_error(conn->ssl, "TLS failed");
    return ORGD_E_TLS;
}

static int tls_write_all(orgd_conn *conn, const uint8_t *data, size_t length) {
    pipe_guard guard;
    pipe_guard_begin(&guard);
    int result = ORGD_OK;
    while (length && result == ORGD_OK) {
        ERR_clear_error();
        errno = 0;
        int chunk = length > INT_MAX ? INT_MAX : (int)length;
        int written = SSL_write(conn->ssl, data, chunk);
        if (written > 0) {
            data += written;
            length -= (size_t)written;
            continue;
        }
        int why = SSL_get_error(conn->ssl, written);
        result = wait_tls(conn->fd, why, -1);
        if (result == ORGD_E_TLS) result = tls_failure(conn, why);
    }
    pipe_guard_end(&guard);
    return result;
}

static int write_all(orgd_conn *conn, const uint8_t *data, size_t length) {
    if (conn->ssl) return tls_write_all(conn, data, length);
    while (length) {
        ssize_t written = send(conn->fd, data, length, MSG_NOSIGNAL);
        if (written < 0) {
            if (errno == EINTR) continue;
            return ORGD_E_IO;
        }
        data += written;
        length -= (size_t)written;
    }
    return ORGD_OK;
}

/* Reads at least one and at most `want` bytes before the deadline. */
static int read_some(orgd_conn *conn, uint8_t *into, size_t want, int64_t deadline, size_t *got) {
    if (!conn->ssl) {
        for (;;) {
            int result = wait_fd(conn->fd, POLLIN, deadline);
            if (result != ORGD_OK) return result;
            ssize_t received = recv(conn->fd, into, want, 0);
            if (received == 0) return ORGD_E_CLOSED;
            if (received > 0) {
                *got = (size_t)received;
                return ORGD_OK;
            }
            if (errno != EINTR && errno != EAGAIN) return ORGD_E_IO;
        }
    }
    /* TLS: the socket is non-blocking; records that carry no data (session
       tickets) are taken in passing, and the wait goes on. */
    pipe_guard guard;
    pipe_guard_begin(&guard);
    int result = ORGD_OK;
    for (;;) {
        ERR_clear_error();
        errno = 0;
        int received = SSL_read(conn->ssl, into, want > INT_MAX ? INT_MAX : (int)want);
        if (received > 0) {
            *got = (size_t)received;
            break;
        }
        int why = SSL_get_error(conn->ssl, received);
        result = wait_tls(conn->fd, why, deadline);
        if (result == ORGD_OK) continue;
        if (result == ORGD_E_TLS) result = tls_failure(conn, why);
        break;
    }
    pipe_guard_end(&guard);
    return result;
}

/* Reads exactly `length` bytes (or discards them when into is NULL). */
static int read_exact(orgd_conn *conn, uint8_t *into, size_t length, int64_t deadline) {
    uint8_t scratch[4096];
    while (length) {
        size_t want = into ? length : (length < sizeof scratch ? length : sizeof scratch);
        size_t got = 0;
        int result = read_some(conn, into ? into : scratch, want, deadline, &got);
        if (result != ORGD_OK) return result;
        if (into) into += got;
        length -= got;
    }
    return ORGD_OK;
}

static int in_flight_index(orgd_conn *conn, uint32_t stream_id) {
    for (size_t i = 0; i < conn->in_flight_count; i++)
        if (conn->in_flight[i] == stream_id) return (int)i;
    return -1;
}

static void forget(orgd_conn *conn, uint32_t stream_id) {
    int index = in_flight_index(conn, stream_id);
    if (index >= 0) conn->in_flight[index] = conn->in_flight[--conn->in_flight_count];
}

void orgd_forget_call(orgd_conn *conn, uint32_t stream_id) {
    if (conn) forget(conn, stream_id);
}

int orgd_start(orgd_conn *conn, const char *service, const char *method,
               const uint8_t *payload, size_t payload_len,
               const orgd_metadata *metadata, size_t metadata_count,
               int64_t timeout_nano, uint32_t *stream_id) {
    if (!conn || !stream_id) return ORGD_E_ARG;
    if (conn->broken) return ORGD_E_CLOSED;
    if (conn->next_stream_id > UINT32_MAX - 2) return ORGD_E_ARG;
    size_t count = metadata_count + (conn->authorization ? 1 : 0);
    orgd_metadata *all = NULL;
    if (count) {
        all = calloc(count, sizeof *all);
        if (!all) return ORGD_E_NOMEM;
        for (size_t i = 0; i < metadata_count; i++) all[i] = metadata[i];
        if (conn->authorization) {
            all[metadata_count].key = "authorization";
            all[metadata_count].value = conn->authorization;
        }
    }
    if (conn->in_flight_count == conn->in_flight_capacity) {
        size_t capacity = conn->in_flight_capacity ? conn->in_flight_capacity * 2 : 16;
        uint32_t *grown = realloc(conn->in_flight, capacity * sizeof *grown);
        if (!grown) {
            free(all);
            return ORGD_E_NOMEM;
        }
        conn->in_flight = grown;
        conn->in_flight_capacity = capacity;
    }
    uint8_t *frame = NULL;
    size_t frame_len = 0;
    uint32_t id = conn->next_stream_id;
    int result = orgd_encode_request(id, service, method, payload, payload_len, all, count, timeout_nano, &frame, &frame_len);
    free(all);
    if (result != ORGD_OK) return result;
    result = write_all(conn, frame, frame_len);
    free(frame);
    if (result != ORGD_OK) {
        conn->broken = 1;
        return result;
    }
    conn->next_stream_id += 2;
    conn->in_flight[conn->in_flight_count++] = id;
    *stream_id = id;
    return ORGD_OK;
}

/* Once a frame has begun it must finish within this long, deadline or not. */
#define FRAME_GRACE_MS 10000

/* Reads one frame; an answer to a call in flight is stashed. A timeout
   before the frame begins leaves the connection usable; one in the middle
   of a frame does not. */
static int read_one(orgd_conn *conn, int64_t deadline) {
    /* The frame's first byte, under the caller's deadline: until it comes,
       nothing of a frame has been read. */
    uint8_t header[HEADER_SIZE];
    int result = read_exact(conn, header, 1, deadline);
    if (result != ORGD_OK) return result;
    deadline = now_ms() + FRAME_GRACE_MS + (deadline >= 0 && deadline > now_ms() ? deadline - now_ms() : 0);
    result = read_exact(conn, header + 1, HEADER_SIZE - 1, deadline);
    if (result != ORGD_OK) return result == ORGD_E_TIMEOUT ? ORGD_E_PROTOCOL : result;
    uint32_t length = get_u32(header);
    uint32_t stream_id = get_u32(header + 4);
    int wanted = header[8] == TYPE_RESPONSE && in_flight_index(conn, stream_id) >= 0;
    if (length > conn->max_frame || !wanted) {
        /* Too large to buffer, or nothing asked for it: skip its bytes. */
        result = read_exact(conn, NULL, length, deadline);
        if (result == ORGD_E_TIMEOUT) return ORGD_E_PROTOCOL;
        if (result != ORGD_OK || !wanted) return result;
        stashed *entry = calloc(1, sizeof *entry);
        if (!entry) return ORGD_E_NOMEM;
        entry->stream_id = stream_id;
        entry->err = ORGD_E_TOO_LARGE;
        entry->next = conn->stash;
        conn->stash = entry;
        return ORGD_OK;
    }
    uint8_t *data = length ? malloc(length) : NULL;
    if (length && !data) return ORGD_E_NOMEM;
    result = read_exact(conn, data, length, deadline);
    if (result != ORGD_OK) {
        free(data);
        return result == ORGD_E_TIMEOUT ? ORGD_E_PROTOCOL : result;
    }
    stashed *entry = calloc(1, sizeof *entry);
    if (!entry) {
        free(data);
        return ORGD_E_NOMEM;
    }
    entry->stream_id = stream_id;
    entry->err = decode_envelope(data, length, &entry->response);
    free(data);
    entry->next = conn->stash;
    conn->stash = entry;
    return ORGD_OK;
}

int orgd_wait(orgd_conn *conn, uint32_t stream_id, int timeout_ms, orgd_response *out) {
    if (!conn || !out) return ORGD_E_ARG;
    memset(out, 0, sizeof *out);
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    for (;;) {
        for (stashed **link = &conn->stash; *link; link = &(*link)->next) {
            if ((*link)->stream_id != stream_id) continue;
            stashed *found = *link;
            *link = found->next;
            int err = found->err;
            if (err == ORGD_OK) *out = found->response;
            free(found);
            forget(conn, stream_id);
            return err;
        }
        if (in_flight_index(conn, stream_id) < 0) return ORGD_E_NO_CALL;
        if (conn->broken) return ORGD_E_CLOSED;
        int result = read_one(conn, deadline);
        if (result == ORGD_E_TIMEOUT) return result; /* nothing of a frame was read */
        if (result != ORGD_OK) {
            /* Mid-frame failure: the byte stream is out of step for good. */
            conn->broken = 1;
            return result;
        }
    }
}

int orgd_call(orgd_conn *conn, const char *service, const char *method,
              const uint8_t *payload, size_t payload_len,
              const orgd_metadata *metadata, size_t metadata_count,
              int64_t timeout_nano, orgd_response *out) {
    uint32_t stream_id;
    int result = orgd_start(conn, service, method, payload, payload_len, metadata, metadata_count, timeout_nano, &stream_id);
    if (result != ORGD_OK) return result;
    /* Leave the server time to say DEADLINE_EXCEEDED itself. */
    int timeout_ms = timeout_nano > 0 ? (int)(timeout_nano / 1000000) + 250 : -1;
    result = orgd_wait(conn, stream_id, timeout_ms, out);
    if (result == ORGD_E_TIMEOUT) forget(conn, stream_id);
    return result;
}
