/*
 * Creates an organisation and lists organisations.
 *   orgd_example unix PATH NAME
 *   orgd_example tcp HOST PORT TOKEN NAME
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orgd_client.h"
#include "orgd/v1/organization.pb-c.h"

static int fail(const char *what, int err, const orgd_response *response) {
    if (err != ORGD_OK) fprintf(stderr, "%s: %s\n", what, orgd_strerror(err));
    else fprintf(stderr, "%s: status %d: %s\n", what, response->code, response->message);
    return 1;
}

int main(int argc, char **argv) {
    int err = ORGD_OK;
    orgd_conn *conn = NULL;
    const char *name = NULL;
    if (argc == 4 && strcmp(argv[1], "unix") == 0) {
        conn = orgd_connect_unix(argv[2], &err);
        name = argv[3];
    } else if (argc == 6 && strcmp(argv[1], "tcp") == 0) {
        conn = orgd_connect_tcp(argv[2], (uint16_t)atoi(argv[3]), &err);
        if (conn) orgd_set_token(conn, argv[4]);
        name = argv[5];
    } else {
        fprintf(stderr, "usage: %s unix PATH NAME | tcp HOST PORT TOKEN NAME\n", argv[0]);
        return 2;
    }
    if (!conn) return fail("connect", err, NULL);

    Orgd__V1__CreateOrganizationRequest create = ORGD__V1__CREATE_ORGANIZATION_REQUEST__INIT;
    create.name = (char *)name;
    create.type = ORGD__V1__ORGANIZATION_TYPE__ORGANIZATION_TYPE_GP_PRACTICE;
    size_t length = orgd__v1__create_organization_request__get_packed_size(&create);
    uint8_t *payload = malloc(length ? length : 1);
    orgd__v1__create_organization_request__pack(&create, payload);
    orgd_response response;
    err = orgd_call(conn, "orgd.v1.OrganizationService", "CreateOrganization", payload, length, NULL, 0, 5000000000LL, &response);
    free(payload);
    if (err != ORGD_OK || response.code != ORGD_STATUS_OK) {
        int status = fail("CreateOrganization", err, &response);
        orgd_response_free(&response);
        orgd_close(conn);
        return status;
    }
    Orgd__V1__Organization *created = orgd__v1__organization__unpack(NULL, response.payload_len, response.payload);
    if (created) printf("created %s \"%s\"\n", created->id, created->name);
    orgd__v1__organization__free_unpacked(created, NULL);
    orgd_response_free(&response);

    Orgd__V1__ListOrganizationsRequest list = ORGD__V1__LIST_ORGANIZATIONS_REQUEST__INIT;
    list.page_size = 100;
    length = orgd__v1__list_organizations_request__get_packed_size(&list);
    payload = malloc(length ? length : 1);
    orgd__v1__list_organizations_request__pack(&list, payload);
    err = orgd_call(conn, "orgd.v1.OrganizationService", "ListOrganizations", payload, length, NULL, 0, 5000000000LL, &response);
    free(payload);
    if (err != ORGD_OK || response.code != ORGD_STATUS_OK) {
        int status = fail("ListOrganizations", err, &response);
        orgd_response_free(&response);
        orgd_close(conn);
        return status;
    }
    Orgd__V1__ListOrganizationsResponse *page = orgd__v1__list_organizations_response__unpack(NULL, response.payload_len, response.payload);
    for (size_t i = 0; page && i < page->n_organizations; i++)
        printf("%s  %s\n", page->organizations[i]->id, page->organizations[i]->name);
    orgd__v1__list_organizations_response__free_unpacked(page, NULL);
    orgd_response_free(&response);
    orgd_close(conn);
    return 0;
}
