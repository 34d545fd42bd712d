/*
 * Tests for orgd_client. Usage: test_client VECTORS.json SOCKET_PATH TCP_PORT
 * [TLS_PORT CERTIFICATE_DIR] (an orgd with mutual TLS; see run-tests.sh)
 * The daemon behind SOCKET_PATH must be fresh (empty database): the shared
 * vectors' ListOrganizations answer is the empty list. Prints one line per
 * check and ends with "N passed, M failed".
 */
#define _GNU_SOURCE
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "orgd_client.h"
#include "grpc/health/v1/health.pb-c.h"
#include "orgd/v1/organization.pb-c.h"
#include "check.h"

static uint8_t *from_hex(const char *hex, size_t *length) {
    size_t n = strlen(hex) / 2;
    uint8_t *bytes = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) sscanf(hex + 2 * i, "%2hhx", &bytes[i]);
    *length = n;
    return bytes;
}

static char *to_hex(const uint8_t *bytes, size_t length) {
    char *hex = malloc(2 * length + 1);
    for (size_t i = 0; i < length; i++) sprintf(hex + 2 * i, "%02x", bytes[i]);
    hex[2 * length] = 0;
    return hex;
}

static const char *string_of(json_object *object, const char *key) {
    json_object *value = NULL;
    return json_object_object_get_ex(object, key, &value) ? json_object_get_string(value) : "";
}

static int64_t int_of(json_object *object, const char *key) {
    json_object *value = NULL;
    return json_object_object_get_ex(object, key, &value) ? json_object_get_int64(value) : 0;
}

/* Each vector both ways: encoding its request gives its frame, decoding its
   response frame gives its fields, and a live call gets the same answer. */
static void test_vectors(const char *path, const char *socket_path) {
    json_object *root = json_object_from_file(path);
    CHECK(root != NULL, "cannot read %s", path);
    if (!root) return;
    json_object *vectors = NULL;
    json_object_object_get_ex(root, "vectors", &vectors);
    int err;
    orgd_conn *live = orgd_connect_unix(socket_path, &err);
    CHECK(live != NULL, "connect %s: %s", socket_path, orgd_strerror(err));
    for (size_t i = 0; vectors && i < json_object_array_length(vectors); i++) {
        json_object *vector = json_object_array_get_idx(vectors, i);
        const char *name = string_of(vector, "name");
        json_object *request = NULL, *response = NULL, *metadata = NULL;
        json_object_object_get_ex(vector, "request", &request);
        json_object_object_get_ex(vector, "response", &response);
        json_object_object_get_ex(request, "metadata", &metadata);
        size_t count = metadata ? json_object_array_length(metadata) : 0;
        orgd_metadata entries[8];
        for (size_t j = 0; j < count && j < 8; j++) {
            json_object *entry = json_object_array_get_idx(metadata, j);
            entries[j].key = string_of(entry, "key");
            entries[j].value = string_of(entry, "value");
        }
        size_t payload_len;
        uint8_t *payload = from_hex(string_of(request, "payload_hex"), &payload_len);
        uint8_t *frame = NULL;
        size_t frame_len = 0;
        err = orgd_encode_request((uint32_t)int_of(request, "stream_id"), string_of(request, "service"), string_of(request, "method"),
                                  payload, payload_len, entries, count, int_of(request, "timeout_nano"), &frame, &frame_len);
        char *hex = err == ORGD_OK ? to_hex(frame, frame_len) : NULL;
        CHECK(hex && strcmp(hex, string_of(vector, "request_frame_hex")) == 0, "%s: request frame %s", name, hex ? hex : orgd_strerror(err));
        free(hex);
        free(frame);

        size_t response_len;
        uint8_t *response_frame = from_hex(string_of(vector, "response_frame_hex"), &response_len);
        orgd_response decoded;
        uint32_t stream_id = 0;
        err = orgd_decode_response(response_frame, response_len, &stream_id, &decoded);
        CHECK(err == ORGD_OK, "%s: decode: %s", name, orgd_strerror(err));
        if (err == ORGD_OK) {
            char *payload_hex = to_hex(decoded.payload ? decoded.payload : (const uint8_t *)"", decoded.payload_len);
            CHECK(stream_id == (uint32_t)int_of(response, "stream_id"), "%s: stream id %u", name, stream_id);
            CHECK(decoded.code == (int32_t)int_of(response, "status_code"), "%s: code %d", name, decoded.code);
            CHECK(strcmp(decoded.message, string_of(response, "status_message")) == 0, "%s: message %s", name, decoded.message);
            CHECK(strcmp(payload_hex, string_of(response, "payload_hex")) == 0, "%s: payload %s", name, payload_hex);
            free(payload_hex);
            orgd_response_free(&decoded);
        }
        free(response_frame);

        if (live) {
            orgd_response answer;
            err = orgd_call(live, string_of(request, "service"), string_of(request, "method"), payload, payload_len, entries, count,
                            int_of(request, "timeout_nano"), &answer);
            char *payload_hex = err == ORGD_OK ? to_hex(answer.payload ? answer.payload : (const uint8_t *)"", answer.payload_len) : NULL;
            CHECK(err == ORGD_OK && answer.code == (int32_t)int_of(response, "status_code") &&
                      strcmp(answer.message, string_of(response, "status_message")) == 0 &&
                      strcmp(payload_hex, string_of(response, "payload_hex")) == 0,
                  "%s: live answer differs (%s)", name, orgd_strerror(err));
            free(payload_hex);
            if (err == ORGD_OK) orgd_response_free(&answer);
        }
        free(payload);
    }
    orgd_close(live);
    json_object_put(root);
}

static int call_with(orgd_conn *conn, const char *method, const ProtobufCMessage *message,
                     const orgd_metadata *metadata, size_t metadata_count, orgd_response *out) {
    size_t length = protobuf_c_message_get_packed_size(message);
    uint8_t *payload = malloc(length ? length : 1);
    protobuf_c_message_pack(message, payload);
    int err = orgd_call(conn, "orgd.v1.OrganizationService", method, payload, length, metadata, metadata_count, 5000000000LL, out);
    free(payload);
    return err;
}

static int call_message(orgd_conn *conn, const char *method, const ProtobufCMessage *message, orgd_response *out) {
    return call_with(conn, method, message, NULL, 0, out);
}

/* Create, read and list organisations over the Unix socket. */
static void test_organizations(const char *socket_path) {
    int err;
    orgd_conn *conn = orgd_connect_unix(socket_path, &err);
    CHECK(conn != NULL, "connect: %s", orgd_strerror(err));
    if (!conn) return;
    Orgd__V1__CreateOrganizationRequest create = ORGD__V1__CREATE_ORGANIZATION_REQUEST__INIT;
    create.name = "C Client Clinic";
    create.type = ORGD__V1__ORGANIZATION_TYPE__ORGANIZATION_TYPE_PRIVATE_CLINIC;
    orgd_response response;
    err = call_message(conn, "CreateOrganization", &create.base, &response);
    CHECK(err == ORGD_OK && response.code == 0, "create: %s %d", orgd_strerror(err), err == ORGD_OK ? response.code : -1);
    char id[64] = "";
    char token[128] = "";
    if (err == ORGD_OK) {
        CHECK(response.consistency_token && strlen(response.consistency_token) < sizeof token, "a write's answer carries a consistency token");
        if (response.consistency_token) snprintf(token, sizeof token, "%s", response.consistency_token);
        Orgd__V1__Organization *created = orgd__v1__organization__unpack(NULL, response.payload_len, response.payload);
        CHECK(created && strcmp(created->name, "C Client Clinic") == 0 && created->version == 1 && created->active, "created organisation");
        if (created) snprintf(id, sizeof id, "%s", created->id);
        orgd__v1__organization__free_unpacked(created, NULL);
        orgd_response_free(&response);
    }

    Orgd__V1__GetOrganizationRequest get = ORGD__V1__GET_ORGANIZATION_REQUEST__INIT;
    get.id = id;
    err = call_message(conn, "GetOrganization", &get.base, &response);
    CHECK(err == ORGD_OK && response.code == 0, "get");
    if (err == ORGD_OK) {
        Orgd__V1__GetOrganizationResponse *read = orgd__v1__get_organization_response__unpack(NULL, response.payload_len, response.payload);
        CHECK(read && read->organization && strcmp(read->organization->id, id) == 0, "get returns the organisation");
        CHECK(response.consistency_token == NULL, "a read's answer carries no consistency token");
        orgd__v1__get_organization_response__free_unpacked(read, NULL);
        orgd_response_free(&response);
    }

    /* The token sent back: answered; a garbled one: INVALID_ARGUMENT. */
    orgd_metadata fresh[] = {{ORGD_CONSISTENCY_TOKEN_KEY, token}};
    err = call_with(conn, "GetOrganization", &get.base, fresh, 1, &response);
    CHECK(err == ORGD_OK && response.code == 0, "get with the write's consistency token");
    if (err == ORGD_OK) orgd_response_free(&response);
    orgd_metadata garbled[] = {{ORGD_CONSISTENCY_TOKEN_KEY, "garbled"}};
    err = call_with(conn, "GetOrganization", &get.base, garbled, 1, &response);
    CHECK(err == ORGD_OK && response.code == ORGD_STATUS_INVALID_ARGUMENT && strstr(response.message, ORGD_CONSISTENCY_TOKEN_KEY),
          "a garbled consistency token is INVALID_ARGUMENT naming the key");
    if (err == ORGD_OK) orgd_response_free(&response);

    Orgd__V1__ListOrganizationsRequest list = ORGD__V1__LIST_ORGANIZATIONS_REQUEST__INIT;
    err = call_message(conn, "ListOrganizations", &list.base, &response);
    CHECK(err == ORGD_OK && response.code == 0, "list");
    if (err == ORGD_OK) {
        Orgd__V1__ListOrganizationsResponse *page = orgd__v1__list_organizations_response__unpack(NULL, response.payload_len, response.payload);
        int found = 0;
        for (size_t i = 0; page && i < page->n_organizations; i++) found |= strcmp(page->organizations[i]->id, id) == 0;
        CHECK(found, "list contains the new organisation");
        orgd__v1__list_organizations_response__free_unpacked(page, NULL);
        orgd_response_free(&response);
    }

    Orgd__V1__CreateOrganizationRequest invalid = ORGD__V1__CREATE_ORGANIZATION_REQUEST__INIT;
    invalid.type = ORGD__V1__ORGANIZATION_TYPE__ORGANIZATION_TYPE_DEPARTMENT;
    err = call_message(conn, "CreateOrganization", &invalid.base, &response);
    CHECK(err == ORGD_OK && response.code == ORGD_STATUS_INVALID_ARGUMENT && strcmp(response.message, "name: required") == 0, "missing name");
    if (err == ORGD_OK) orgd_response_free(&response);

    err = orgd_call(conn, "orgd.v1.OrganizationService", "Nope", NULL, 0, NULL, 0, 0, &response);
    CHECK(err == ORGD_OK && response.code == ORGD_STATUS_UNIMPLEMENTED && strcmp(response.message, "method Nope") == 0, "unknown method");
    if (err == ORGD_OK) orgd_response_free(&response);
    orgd_close(conn);
}

/* Many calls in flight on one connection, collected in reverse order. */
static void test_multiplexing(const char *socket_path) {
    int err;
    orgd_conn *conn = orgd_connect_unix(socket_path, &err);
    if (!conn) {
        CHECK(0, "connect");
        return;
    }
    enum { CALLS = 32 };
    uint32_t ids[CALLS];
    Grpc__Health__V1__HealthCheckRequest check = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    uint8_t payload[16];
    size_t length = grpc__health__v1__health_check_request__pack(&check, payload);
    for (int i = 0; i < CALLS; i++) {
        const char *method = i % 2 ? "Check" : "Missing";
        err = orgd_start(conn, "grpc.health.v1.Health", method, payload, length, NULL, 0, 0, &ids[i]);
        CHECK(err == ORGD_OK, "start %d", i);
    }
    int good = 0;
    for (int i = CALLS - 1; i >= 0; i--) {
        orgd_response response;
        err = orgd_wait(conn, ids[i], 5000, &response);
        if (err != ORGD_OK) continue;
        int expected = i % 2 ? ORGD_STATUS_OK : ORGD_STATUS_UNIMPLEMENTED;
        good += response.code == expected;
        orgd_response_free(&response);
    }
    CHECK(good == CALLS, "%d of %d multiplexed answers matched their calls", good, CALLS);
    orgd_response response;
    CHECK(orgd_wait(conn, ids[0], 100, &response) == ORGD_E_NO_CALL, "a collected call cannot be collected twice");
    orgd_close(conn);
}

/* TCP without a token is refused; the connection still answers health checks. */
static void test_tcp(int port) {
    int err;
    orgd_conn *conn = orgd_connect_tcp("127.0.0.1", (uint16_t)port, &err);
    CHECK(conn != NULL, "tcp connect: %s", orgd_strerror(err));
    if (!conn) return;
    orgd_response response;
    err = orgd_call(conn, "orgd.v1.OrganizationService", "ListOrganizations", NULL, 0, NULL, 0, 0, &response);
    CHECK(err == ORGD_OK && response.code == ORGD_STATUS_UNAUTHENTICATED, "tcp without token: %d", err == ORGD_OK ? response.code : err);
    if (err == ORGD_OK) orgd_response_free(&response);
    orgd_set_token(conn, "orgd_not-a-real-token");
    err = orgd_call(conn, "orgd.v1.OrganizationService", "ListOrganizations", NULL, 0, NULL, 0, 0, &response);
    CHECK(err == ORGD_OK && response.code == ORGD_STATUS_UNAUTHENTICATED, "tcp with a bad token");
    if (err == ORGD_OK) orgd_response_free(&response);
    orgd_close(conn);
}

/* A health check over `conn`: ORGD_OK and SERVING, or why not. */
static int health_check(orgd_conn *conn) {
    Grpc__Health__V1__HealthCheckRequest check = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    uint8_t payload[64];
    size_t length = grpc__health__v1__health_check_request__pack(&check, payload);
    orgd_response response;
    int err = orgd_call(conn, "grpc.health.v1.Health", "Check", payload, length, NULL, 0, 2000000000LL, &response);
    if (err != ORGD_OK) return err;
    Grpc__Health__V1__HealthCheckResponse *answer =
        grpc__health__v1__health_check_response__unpack(NULL, response.payload_len, response.payload);
    int serving = response.code == ORGD_STATUS_OK && answer &&
                  answer->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    if (answer) grpc__health__v1__health_check_response__free_unpacked(answer, NULL);
    orgd_response_free(&response);
    return serving ? ORGD_OK : ORGD_E_PROTOCOL;
}

/* Against orgd with mutual TLS on `port` (its certificate names only
   "localhost"; client certificates must come from the test CA). */
static void test_tls(int port, const char *dir) {
    char ca[512], cert[512], key[512], foreign_cert[512], foreign_key[512];
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    snprintf(cert, sizeof cert, "%s/client.pem", dir);
    snprintf(key, sizeof key, "%s/client-key.pem", dir);
    snprintf(foreign_cert, sizeof foreign_cert, "%s/foreign-client.pem", dir);
    snprintf(foreign_key, sizeof foreign_key, "%s/foreign-client-key.pem", dir);
    uint16_t tls_port = (uint16_t)port;
    int err;

    orgd_tls_options good = {.ca_file = ca, .cert_file = cert, .key_file = key};
    orgd_conn *conn = orgd_connect_tls("localhost", tls_port, &good, &err);
    CHECK(conn != NULL, "tls connect: %s: %s", orgd_strerror(err), orgd_tls_error());
    if (conn) {
        int served = 0;
        for (int i = 0; i < 20; i++) served += health_check(conn) == ORGD_OK;
        CHECK(served == 20, "20 health checks over mutual TLS: %d served", served);
        /* Calls in flight together, collected out of order. */
        uint32_t ids[3];
        int started = 0;
        for (int i = 0; i < 3; i++)
            started += orgd_start(conn, "orgd.v1.OrganizationService", "ListOrganizations", NULL, 0, NULL, 0, 0, &ids[i]) == ORGD_OK;
        CHECK(started == 3, "three calls started over TLS");
        for (int i = 2; i >= 0 && started == 3; i--) {
            orgd_response response;
            err = orgd_wait(conn, ids[i], 5000, &response);
            CHECK(err == ORGD_OK && response.code == ORGD_STATUS_UNAUTHENTICATED,
                  "over TLS a token is still needed (call %d): %d", i, err == ORGD_OK ? response.code : err);
            if (err == ORGD_OK) orgd_response_free(&response);
        }
        /* A call started, then collected on its own. */
        uint32_t id;
        orgd_start(conn, "grpc.health.v1.Health", "Check", NULL, 0, NULL, 0, 0, &id);
        orgd_response response;
        err = orgd_wait(conn, id, 5000, &response);
        CHECK(err == ORGD_OK && response.code == ORGD_STATUS_OK, "a started health check is collected over TLS");
        if (err == ORGD_OK) orgd_response_free(&response);
        orgd_close(conn);
    }

    orgd_tls_options by_address = {.ca_file = ca, .cert_file = cert, .key_file = key, .server_name = "localhost"};
    conn = orgd_connect_tls("127.0.0.1", tls_port, &by_address, &err);
    CHECK(conn != NULL && health_check(conn) == ORGD_OK, "by address, naming the certificate's host: %s", orgd_tls_error());
    orgd_close(conn);

    /* The server's certificate is checked: its CA, its name, its address. */
    orgd_tls_options system_cas = {.cert_file = cert, .key_file = key};
    conn = orgd_connect_tls("localhost", tls_port, &system_cas, &err);
    CHECK(conn == NULL && err == ORGD_E_TLS && strstr(orgd_tls_error(), "certificate"),
          "an untrusted server certificate is refused: %s", orgd_tls_error());
    orgd_close(conn);
    orgd_tls_options wrong_name = {.ca_file = ca, .cert_file = cert, .key_file = key, .server_name = "orgd.example"};
    conn = orgd_connect_tls("localhost", tls_port, &wrong_name, &err);
    CHECK(conn == NULL && err == ORGD_E_TLS, "a name the certificate lacks is refused: %s", orgd_tls_error());
    orgd_close(conn);
    conn = orgd_connect_tls("127.0.0.1", tls_port, &good, &err);
    CHECK(conn == NULL && err == ORGD_E_TLS, "an address the certificate lacks is refused: %s", orgd_tls_error());
    orgd_close(conn);

    /* The server checks the client: no certificate, or one from another CA,
       is not served (with TLS 1.3 the refusal may come after the handshake). */
    orgd_tls_options anonymous = {.ca_file = ca};
    orgd_tls_options foreign = {.ca_file = ca, .cert_file = foreign_cert, .key_file = foreign_key};
    orgd_tls_options *refused[] = {&anonymous, &foreign};
    for (int i = 0; i < 2; i++) {
        conn = orgd_connect_tls("localhost", tls_port, refused[i], &err);
        if (conn) err = health_check(conn);
        CHECK(err == ORGD_E_TLS || err == ORGD_E_CLOSED, "%s client certificate is not served: %s (%s)",
              i == 0 ? "no" : "a foreign", orgd_strerror(err), orgd_tls_error());
        orgd_close(conn);
    }

    /* Bad options are reported, not crashed on. */
    orgd_tls_options missing = {.ca_file = "/nonexistent/ca.pem"};
    conn = orgd_connect_tls("localhost", tls_port, &missing, &err);
    CHECK(conn == NULL && err == ORGD_E_TLS && strstr(orgd_tls_error(), "ca_file"), "a missing CA file: %s", orgd_tls_error());
    orgd_tls_options half = {.ca_file = ca, .cert_file = cert};
    conn = orgd_connect_tls("localhost", tls_port, &half, &err);
    CHECK(conn == NULL && err == ORGD_E_ARG, "a certificate without its key is a bad argument");
    orgd_tls_options mismatched = {.ca_file = ca, .cert_file = cert, .key_file = foreign_key};
    conn = orgd_connect_tls("localhost", tls_port, &mismatched, &err);
    CHECK(conn == NULL && err == ORGD_E_TLS, "a key that does not match the certificate: %s", orgd_tls_error());

    /* Plain ttrpc to the TLS port gets nowhere, and says so. */
    conn = orgd_connect_tcp("127.0.0.1", tls_port, &err);
    if (conn) err = health_check(conn);
    CHECK(err != ORGD_OK, "plain TCP to the TLS port is not served: %s", orgd_strerror(err));
    orgd_close(conn);
}

/* A fake server on a socketpair sends `bytes` after reading the request. */
static int hostile(const uint8_t *bytes, size_t length, size_t max_frame, int timeout_ms) {
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0) return -100;
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        close(pair[0]);
        uint8_t scratch[4096];
        (void)!read(pair[1], scratch, sizeof scratch);
        size_t sent = 0;
        while (sent < length) {
            ssize_t n = write(pair[1], bytes + sent, length - sent);
            if (n <= 0) break;
            sent += (size_t)n;
        }
        /* Stay silent past the client's deadline only when sending nothing. */
        if (length == 0) usleep((useconds_t)timeout_ms * 3000);
        close(pair[1]);
        _exit(0);
    }
    close(pair[1]);
    int err;
    orgd_conn *conn = orgd_from_fd(pair[0], &err);
    orgd_set_max_frame(conn, max_frame);
    uint32_t id;
    orgd_start(conn, "s", "m", NULL, 0, NULL, 0, 0, &id);
    orgd_response response;
    err = orgd_wait(conn, id, timeout_ms, &response);
    if (err == ORGD_OK) orgd_response_free(&response);
    orgd_close(conn);
    waitpid(child, NULL, 0);
    return err;
}

static void test_hostile_server(void) {
    /* Declares 100 MiB for stream 1, sends a little, hangs up: never buffered. */
    uint8_t huge[10 + 64] = {0x06, 0x40, 0x00, 0x00, 0, 0, 0, 1, 2, 0};
    CHECK(hostile(huge, sizeof huge, ORGD_DEFAULT_MAX_FRAME, 5000) == ORGD_E_CLOSED, "oversized then closed");
    /* An oversized answer that does arrive whole is skipped and reported. */
    size_t big_len = 10 + 2000;
    uint8_t *big = calloc(1, big_len);
    big[2] = 0x07; big[3] = 0xd0; big[7] = 1; big[8] = 2;
    CHECK(hostile(big, big_len, 1024, 5000) == ORGD_E_TOO_LARGE, "oversized answer skipped");
    free(big);
    /* A well-framed answer whose envelope is garbage. */
    uint8_t garbage[10 + 5] = {0, 0, 0, 5, 0, 0, 0, 1, 2, 0, 0xff, 0xff, 0xff, 0xff, 0xff};
    CHECK(hostile(garbage, sizeof garbage, ORGD_DEFAULT_MAX_FRAME, 5000) == ORGD_E_PROTOCOL, "undecodable envelope");
    /* A truncated frame, then the server hangs up. */
    uint8_t truncated[10 + 3] = {0, 0, 0, 50, 0, 0, 0, 1, 2, 0, 1, 2, 3};
    CHECK(hostile(truncated, sizeof truncated, ORGD_DEFAULT_MAX_FRAME, 5000) == ORGD_E_CLOSED, "truncated frame");
    /* Silence: the deadline passes. */
    CHECK(hostile(NULL, 0, ORGD_DEFAULT_MAX_FRAME, 200) == ORGD_E_TIMEOUT, "timeout");
    /* Frames for streams nobody asked about, and of unknown types, are skipped. */
    uint8_t noise[] = {0, 0, 0, 2, 0, 0, 0, 9, 2, 0, 0x0a, 0x00, 0, 0, 0, 1, 0, 0, 0, 1, 0x7f, 0, 0xee,
                       0, 0, 0, 2, 0, 0, 0, 1, 2, 0, 0x0a, 0x00};
    CHECK(hostile(noise, sizeof noise, ORGD_DEFAULT_MAX_FRAME, 5000) == ORGD_OK, "noise skipped, then the answer");
}

int main(int argc, char **argv) {
    if (argc != 4 && argc != 6) {
        fprintf(stderr, "usage: %s VECTORS.json SOCKET_PATH TCP_PORT [TLS_PORT CERTIFICATE_DIR]\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    test_vectors(argv[1], argv[2]);
    test_organizations(argv[2]);
    test_multiplexing(argv[2]);
    test_tcp(atoi(argv[3]));
    test_hostile_server();
    if (argc == 6) test_tls(atoi(argv[4]), argv[5]);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
