"""orgd over gRPC with the stock grpcio client from PyPI: every service is
called at least once, errors carry their status and details the standard way
(grpc-status-details-bin, read by grpcio-status), and grpc.health.v1 Check
and Watch work as probes expect."""
import signal
import threading

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@pytest.fixture
def api(stubs, daemon):
    """The generated stubs, a channel to the daemon and a superadmin token."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from orgd.v1 import (audit_pb2_grpc, common_pb2, consent_pb2, consent_pb2_grpc, invitation_pb2, invitation_pb2_grpc,
                         membership_pb2, membership_pb2_grpc, organization_pb2, organization_pb2_grpc, token_pb2,
                         token_pb2_grpc, audit_pb2)

    class Api:
        pass

    a = Api()
    a.daemon = daemon
    a.channel = grpc.insecure_channel(daemon.target)
    a.token = daemon.token("superadmin")
    a.auth = (("authorization", f"Bearer {a.token}"),)
    a.pb = {"organization": organization_pb2, "token": token_pb2, "membership": membership_pb2,
            "consent": consent_pb2, "invitation": invitation_pb2, "audit": audit_pb2, "health": health_pb2, "common": common_pb2}
    a.organizations = organization_pb2_grpc.OrganizationServiceStub(a.channel)
    a.tokens = token_pb2_grpc.TokenServiceStub(a.channel)
    a.memberships = membership_pb2_grpc.MembershipServiceStub(a.channel)
    a.consents = consent_pb2_grpc.ConsentServiceStub(a.channel)
    a.invitations = invitation_pb2_grpc.InvitationServiceStub(a.channel)
    a.audit = audit_pb2_grpc.AuditServiceStub(a.channel)
    a.health = health_pb2_grpc.HealthStub(a.channel)
    yield a
    a.channel.close()


def test_every_service_answers_with_a_token(api):
    pb = api.pb
    created = api.organizations.CreateOrganization(
        pb["organization"].CreateOrganizationRequest(name="gRPC Practice", type="ORGANIZATION_TYPE_GP_PRACTICE"),
        metadata=api.auth, timeout=60)
    assert created.name == "gRPC Practice" and created.version == 1
    got = api.organizations.GetOrganization(pb["organization"].GetOrganizationRequest(id=created.id), metadata=api.auth, timeout=60)
    assert got.organization == created
    listed = api.organizations.ListOrganizations(pb["organization"].ListOrganizationsRequest(), metadata=api.auth, timeout=60)
    assert [o.id for o in listed.organizations] == [created.id]

    accounts = api.tokens.ListServiceAccounts(pb["token"].ListServiceAccountsRequest(), metadata=api.auth, timeout=60)
    assert any(account.system_role == pb["common"].SYSTEM_ROLE_SUPERADMIN for account in accounts.service_accounts)

    user = api.memberships.CreateUser(
        pb["membership"].CreateUserRequest(email="grpc@example.org", given_name="Grace", family_name="Hopper"),
        metadata=api.auth, timeout=60)
    users = api.memberships.ListUsers(pb["membership"].ListUsersRequest(), metadata=api.auth, timeout=60)
    assert user.id in [u.id for u in users.users]

    scope = api.consents.CreateScope(
        pb["consent"].CreateScopeRequest(coding_system="https://scopes.example", coding_code="research", text="Research"),
        metadata=api.auth, timeout=60)
    scopes = api.consents.ListScopes(pb["consent"].ListScopesRequest(), metadata=api.auth, timeout=60)
    assert scope.id in [s.id for s in scopes.scopes]

    invitations = api.invitations.ListInvitations(
        pb["invitation"].ListInvitationsRequest(organization_id=created.id), metadata=api.auth, timeout=60)
    assert list(invitations.invitations) == []

    log = api.audit.ListAuditLog(pb["audit"].ListAuditLogRequest(), metadata=api.auth, timeout=60)
    assert "orgd.v1.OrganizationService/CreateOrganization" in [entry.method for entry in log.entries]

    assert api.health.Check(pb["health"].HealthCheckRequest(), timeout=60).status == pb["health"].HealthCheckResponse.SERVING


def test_errors_carry_status_and_details(api):
    pb = api.pb
    with pytest.raises(grpc.RpcError) as anonymous:
        api.organizations.ListOrganizations(pb["organization"].ListOrganizationsRequest(), timeout=60)
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED

    with pytest.raises(grpc.RpcError) as invalid:
        api.organizations.CreateOrganization(
            pb["organization"].CreateOrganizationRequest(type="ORGANIZATION_TYPE_DEPARTMENT"),
            metadata=api.auth, timeout=60)
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(invalid.value)  # checks code and message match the trailer
    assert status is not None and status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [("name", "required")]

    with pytest.raises(grpc.RpcError) as missing:
        api.organizations.GetOrganization(
            pb["organization"].GetOrganizationRequest(id="00000000-0000-0000-0000-000000000000"), metadata=api.auth, timeout=60)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert rpc_status.from_call(missing.value).code == grpc.StatusCode.NOT_FOUND.value[0]

    admin = api.daemon.token("admin")
    with pytest.raises(grpc.RpcError) as denied:
        api.audit.ListAuditLog(pb["audit"].ListAuditLogRequest(), metadata=(("authorization", f"Bearer {admin}"),), timeout=60)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED

    with pytest.raises(grpc.RpcError) as unknown:
        api.channel.unary_unary("/orgd.v1.OrganizationService/Nope")(b"", metadata=api.auth, timeout=60)
    assert unknown.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_health_watch_sees_not_serving_at_drain(api):
    health = api.pb["health"]
    with pytest.raises(grpc.RpcError) as unknown:
        api.health.Check(health.HealthCheckRequest(service="no.such.Service"), timeout=60)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

    # A watch the client cancels ends at once.
    cancelled = api.health.Watch(health.HealthCheckRequest(service="orgd.v1.ConsentService"), timeout=120)
    assert next(cancelled).status == health.HealthCheckResponse.SERVING
    cancelled.cancel()
    with pytest.raises(grpc.RpcError) as gone:
        next(cancelled)
    assert gone.value.code() == grpc.StatusCode.CANCELLED

    watch = api.health.Watch(health.HealthCheckRequest(), timeout=120)
    assert next(watch).status == health.HealthCheckResponse.SERVING
    stopped = threading.Event()

    def drain():
        api.daemon.process.send_signal(signal.SIGTERM)
        stopped.set()

    threading.Thread(target=drain).start()
    assert next(watch).status == health.HealthCheckResponse.NOT_SERVING
    assert list(watch) == []  # then the stream ends
    assert watch.code() == grpc.StatusCode.OK
    assert stopped.wait(60)
    assert api.daemon.process.wait(timeout=60) == 0
