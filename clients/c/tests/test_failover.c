/*
 * Tests for orgd_failover. Usage: test_failover FIRST_SOCKET FIRST_PID SECOND_SOCKET SECOND_PID
 * Two fresh daemons, each on its own database (so the data tells which one
 * answered); the test stops them itself (SIGTERM) along the way. Prints one
 * line per failed check and ends with "N passed, M failed".
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "orgd_client.h"
#include "orgd/v1/organization.pb-c.h"
#include "check.h"

static const char *service = "orgd.v1.OrganizationService";

/* Creates an organisation named `name` through the failover. */
static int create(orgd_failover *failover, const char *name, orgd_response *out) {
    Orgd__V1__CreateOrganizationRequest request = ORGD__V1__CREATE_ORGANIZATION_REQUEST__INIT;
    request.name = (char *)name;
    request.type = ORGD__V1__ORGANIZATION_TYPE__ORGANIZATION_TYPE_HOSPITAL_TEAM;
    uint8_t payload[256];
    size_t length = orgd__v1__create_organization_request__pack(&request, payload);
    return orgd_failover_call(failover, service, "CreateOrganization", payload, length, NULL, 0, 30000000000LL, out);
}

/* The names of the organisations the daemon at `socket_path` holds, joined
   by commas into `into` ("" when none); -1 when it cannot be asked. */
static int names(const char *socket_path, char *into, size_t size) {
    into[0] = 0;
    int err;
    orgd_conn *conn = orgd_connect_unix(socket_path, &err);
    if (!conn) return -1;
    orgd_response response;
    err = orgd_call(conn, service, "ListOrganizations", NULL, 0, NULL, 0, 30000000000LL, &response);
    orgd_close(conn);
    if (err != ORGD_OK) return -1;
    Orgd__V1__ListOrganizationsResponse *page =
        orgd__v1__list_organizations_response__unpack(NULL, response.payload_len, response.payload);
    orgd_response_free(&response);
    if (!page) return -1;
    size_t used = 0;
    for (size_t i = 0; i < page->n_organizations && used < size; i++)
        used += (size_t)snprintf(into + used, size - used, "%s%s", i ? "," : "", page->organizations[i]->name);
    orgd__v1__list_organizations_response__free_unpacked(page, NULL);
    return 0;
}

/* Stops the daemon `pid` and waits (30 s at most) until its socket refuses. */
static void stop_daemon(pid_t pid, const char *socket_path) {
    kill(pid, SIGTERM);
    for (int i = 0; i < 300; i++) {
        int err;
        orgd_conn *conn = orgd_connect_unix(socket_path, &err);
        if (!conn) return;
        orgd_close(conn);
        struct timespec pause = {0, 100000000};
        nanosleep(&pause, NULL);
    }
}

/* A server that takes one connection, reads a request and hangs up without
   answering: a daemon that dies with a call in flight. */
typedef struct {
    char path[108];
    int listener;
    int requests;
    pthread_t thread;
} hang_up_server;

static void *hang_up(void *argument) {
    hang_up_server *server = argument;
    int connection = accept(server->listener, NULL, NULL);
    if (connection < 0) return NULL;
    char buffer[4096];
    if (recv(connection, buffer, sizeof buffer, 0) > 0) server->requests++;
    close(connection);
    return NULL;
}

static int hang_up_start(hang_up_server *server) {
    memset(server, 0, sizeof *server);
    snprintf(server->path, sizeof server->path, "/tmp/orgd-c-hangup-%d", (int)getpid());
    unlink(server->path);
    server->listener = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    strcpy(address.sun_path, server->path);
    if (bind(server->listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(server->listener, 1) != 0) return -1;
    return pthread_create(&server->thread, NULL, hang_up, server);
}

static void hang_up_stop(hang_up_server *server) {
    pthread_join(server->thread, NULL);
    close(server->listener);
    unlink(server->path);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s FIRST_SOCKET FIRST_PID SECOND_SOCKET SECOND_PID\n", argv[0]);
        return 2;
    }
    const char *first = argv[1], *second = argv[3];
    pid_t first_pid = (pid_t)atoi(argv[2]), second_pid = (pid_t)atoi(argv[4]);
    char listed[1024];
    orgd_response response;

    /* One of two stops: the next calls go to the other. */
    orgd_address both[] = {{.unix_path = first}, {.unix_path = second}};
    int err;
    orgd_failover *failover = orgd_failover_new(both, 2, &err);
    CHECK(failover != NULL, "orgd_failover_new: %s", orgd_strerror(err));
    if (!failover) return 1;
    err = create(failover, "Before", &response);
    CHECK(err == ORGD_OK && response.code == ORGD_STATUS_OK, "create Before: %s %s", orgd_strerror(err), orgd_failover_error(failover));
    if (err == ORGD_OK) orgd_response_free(&response);
    CHECK(orgd_failover_current(failover) == 0, "first address in use");
    CHECK(names(first, listed, sizeof listed) == 0 && strcmp(listed, "Before") == 0, "first holds Before: %s", listed);
    CHECK(names(second, listed, sizeof listed) == 0 && strcmp(listed, "") == 0, "second holds nothing: %s", listed);
    stop_daemon(first_pid, first);
    err = create(failover, "After", &response);
    CHECK(err == ORGD_OK && response.code == ORGD_STATUS_OK, "create After once the first stopped: %s %s",
          orgd_strerror(err), orgd_failover_error(failover));
    if (err == ORGD_OK) orgd_response_free(&response);
    CHECK(orgd_failover_current(failover) == 1, "second address in use");
    CHECK(names(second, listed, sizeof listed) == 0 && strcmp(listed, "After") == 0, "second holds After: %s", listed);

    /* A call in flight when its connection drops fails and is not sent again. */
    hang_up_server server;
    CHECK(hang_up_start(&server) == 0, "hang-up server");
    orgd_address via_hang_up[] = {{.unix_path = server.path}, {.unix_path = second}};
    orgd_failover *dropping = orgd_failover_new(via_hang_up, 2, &err);
    err = create(dropping, "Once", &response);
    CHECK(err == ORGD_E_CLOSED, "in flight: %s", orgd_strerror(err));
    if (err == ORGD_OK) orgd_response_free(&response);
    CHECK(strstr(orgd_failover_error(dropping), "not sent again") != NULL, "says so: %s", orgd_failover_error(dropping));
    hang_up_stop(&server);
    CHECK(server.requests == 1, "the hang-up server got the request");
    CHECK(names(second, listed, sizeof listed) == 0 && strcmp(listed, "After") == 0, "not replayed on the second: %s", listed);
    err = orgd_failover_call(dropping, service, "ListOrganizations", NULL, 0, NULL, 0, 30000000000LL, &response);
    CHECK(err == ORGD_OK && response.code == ORGD_STATUS_OK, "the next call goes to the second: %s", orgd_strerror(err));
    if (err == ORGD_OK) orgd_response_free(&response);
    orgd_failover_free(dropping);

    /* Every address down: ORGD_E_CONNECT, naming each. */
    stop_daemon(second_pid, second);
    err = orgd_failover_call(failover, service, "ListOrganizations", NULL, 0, NULL, 0, 30000000000LL, &response);
    CHECK(err == ORGD_E_CONNECT, "all down: %s", orgd_strerror(err));
    if (err == ORGD_OK) orgd_response_free(&response);
    char expected[256];
    snprintf(expected, sizeof expected, "unix:%s", first);
    CHECK(strstr(orgd_failover_error(failover), expected) != NULL, "names %s: %s", expected, orgd_failover_error(failover));
    snprintf(expected, sizeof expected, "unix:%s", second);
    CHECK(strstr(orgd_failover_error(failover), expected) != NULL, "names %s: %s", expected, orgd_failover_error(failover));
    CHECK(orgd_failover_current(failover) == -1, "no address in use");
    orgd_failover_free(failover);

    CHECK(orgd_failover_new(NULL, 0, &err) == NULL && err == ORGD_E_ARG, "no addresses");

    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
