/* orgd_failover: one caller's calls over several orgd addresses; see
   include/orgd_client.h. */
#define _GNU_SOURCE
#include "orgd_client.h"
#include "orgd_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct orgd_failover {
    const orgd_address *addresses;
    size_t count;
    char *token;
    orgd_conn *conn;    /* the current connection, or NULL */
    size_t current;     /* its address, when conn is set */
    size_t next;        /* where the next connect starts */
    char error[1024];
};

orgd_failover *orgd_failover_new(const orgd_address *addresses, size_t count, int *err) {
    if (!addresses || count == 0) {
        if (err) *err = ORGD_E_ARG;
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        if (!addresses[i].unix_path && !addresses[i].host) {
            if (err) *err = ORGD_E_ARG;
            return NULL;
        }
    }
    orgd_failover *failover = calloc(1, sizeof *failover);
    if (!failover) {
        if (err) *err = ORGD_E_NOMEM;
        return NULL;
    }
    failover->addresses = addresses;
    failover->count = count;
    if (err) *err = ORGD_OK;
    return failover;
}

int orgd_failover_set_token(orgd_failover *failover, const char *token) {
    if (!failover) return ORGD_E_ARG;
    char *copy = token ? strdup(token) : NULL;
    if (token && !copy) return ORGD_E_NOMEM;
    free(failover->token);
    failover->token = copy;
    if (failover->conn) return orgd_set_token(failover->conn, token);
    return ORGD_OK;
}

const char *orgd_failover_error(const orgd_failover *failover) {
    return failover ? failover->error : "";
}

int orgd_failover_current(const orgd_failover *failover) {
    return failover && failover->conn ? (int)failover->current : -1;
}

void orgd_failover_free(orgd_failover *failover) {
    if (!failover) return;
    orgd_close(failover->conn);
    free(failover->token);
    free(failover);
}

/* An address as the other clients print it: unix:PATH or tcp:HOST:PORT. */
static void describe(const orgd_address *address, char *into, size_t size) {
    if (address->unix_path)
        snprintf(into, size, "unix:%s", address->unix_path);
    else
        snprintf(into, size, "tcp:%s:%u", address->host, (unsigned)address->port);
}

/* Appends to the error text, cutting it short rather than overflowing. */
static void append_error(orgd_failover *failover, const char *format, ...) {
    size_t used = strlen(failover->error);
    if (used + 1 >= sizeof failover->error) return;
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(failover->error + used, sizeof failover->error - used, format, arguments);
    va_end(arguments);
}

/* Gives the current connection up; the next connect starts after it. */
static void lose(orgd_failover *failover) {
    orgd_close(failover->conn);
    failover->conn = NULL;
    failover->next = (failover->current + 1) % failover->count;
}

/* Connects to the first address that answers, from `next` and wrapping round. */
static int connect_first(orgd_failover *failover) {
    char tried[1024] = "";
    size_t used = 0;
    for (size_t offset = 0; offset < failover->count; offset++) {
        size_t index = (failover->next + offset) % failover->count;
        const orgd_address *address = &failover->addresses[index];
        int err = ORGD_OK;
        errno = 0;
        orgd_conn *conn = address->unix_path ? orgd_connect_unix(address->unix_path, &err)
                          : address->tls  ? orgd_connect_tls(address->host, address->port, address->tls, &err)
                                          : orgd_connect_tcp(address->host, address->port, &err);
        if (conn) {
            if (failover->token && orgd_set_token(conn, failover->token) != ORGD_OK) {
                orgd_close(conn);
                return ORGD_E_NOMEM;
            }
            failover->conn = conn;
            failover->current = index;
            return ORGD_OK;
        }
        char name[512];
        describe(address, name, sizeof name);
        const char *why = err == ORGD_E_TLS ? orgd_tls_error() : errno ? strerror(errno) : orgd_strerror(err);
        if (used < sizeof tried)
            used += (size_t)snprintf(tried + used, sizeof tried - used, "%s%s: %s", offset ? "; " : "", name, why);
    }
    append_error(failover, "cannot connect to orgd at any of its %zu addresses (%s)", failover->count, tried);
    return ORGD_E_CONNECT;
}

/* Whether the daemon refused the call because it is shutting down: it did
   not run (PROTOCOL.md, "Several addresses"). */
static int refused_while_stopping(const orgd_response *response) {
    return response->code == ORGD_STATUS_UNAVAILABLE && response->message &&
           strncmp(response->message, "the server is shutting down", 27) == 0;
}

int orgd_failover_call(orgd_failover *failover, const char *service, const char *method,
                       const uint8_t *payload, size_t payload_len,
                       const orgd_metadata *metadata, size_t metadata_count,
                       int64_t timeout_nano, orgd_response *out) {
    if (!failover || !out) return ORGD_E_ARG;
    memset(out, 0, sizeof *out);
    failover->error[0] = 0;
    /* Each address at most once for a call no daemon has run. */
    for (size_t attempt = 0; attempt < failover->count; attempt++) {
        if (failover->conn && !orgd_is_open(failover->conn)) lose(failover);
        if (!failover->conn) {
            int result = connect_first(failover);
            if (result != ORGD_OK) return result;
        }
        char name[512];
        describe(&failover->addresses[failover->current], name, sizeof name);
        uint32_t stream_id;
        int result = orgd_start(failover->conn, service, method, payload, payload_len, metadata, metadata_count,
                                timeout_nano, &stream_id);
        if (result == ORGD_E_IO || result == ORGD_E_CLOSED || result == ORGD_E_TLS) {
            /* The request never got out whole: no daemon ran it. */
            append_error(failover, "%s: %s; ", name, orgd_strerror(result));
            lose(failover);
            continue;
        }
        if (result != ORGD_OK) return result;
        /* Leave the server time to say DEADLINE_EXCEEDED itself (as orgd_call). */
        int timeout_ms = timeout_nano > 0 ? (int)(timeout_nano / 1000000) + 250 : -1;
        result = orgd_wait(failover->conn, stream_id, timeout_ms, out);
        if (result == ORGD_OK && refused_while_stopping(out)) {
            append_error(failover, "%s: %s; ", name, out->message);
            lose(failover);
            if (attempt + 1 < failover->count) {
                orgd_response_free(out);
                continue;
            }
            return ORGD_OK;
        }
        if (result == ORGD_OK) {
            failover->error[0] = 0;
            return ORGD_OK;
        }
        if (result == ORGD_E_TIMEOUT) {
            /* The connection is still in step; its answer, if any, is skipped. */
            orgd_forget_call(failover->conn, stream_id);
            append_error(failover, "%s: %s", name, orgd_strerror(result));
            return result;
        }
        append_error(failover, "%s: %s (the call may have run and is not sent again; the next call goes to the next address)",
                     name, orgd_strerror(result));
        lose(failover);
        return result;
    }
    append_error(failover, "no orgd took the call");
    return ORGD_E_CONNECT;
}
