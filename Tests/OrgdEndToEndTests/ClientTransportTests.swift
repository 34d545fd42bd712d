import Foundation
@testable import OrgdClient
import OrgdCore
import OrgdProto
import OrgdServer
import OrgdWire
import Testing

/// The typed Swift client over ttrpc and over gRPC, against one real daemon
/// listening on both: the same calls give equal answers and equal errors
/// (code, message, field violations), so a caller cannot tell which
/// transport carried them.
@Suite("the Swift client over ttrpc and gRPC")
struct ClientTransportTests {
    /// A daemon with ttrpc on TCP and gRPC beside it, both on 127.0.0.1, port 0.
    static func withBothTransports(configure: (inout ServerConfiguration) -> Void = { _ in }, _ body: (TestDaemon) async throws -> Void) async throws {
        try await withDaemon(configure: {
            $0.grpcHost = "127.0.0.1"
            configure(&$0)
        }, body)
    }

    /// A client on each transport, with the same credentials.
    static func clients(_ daemon: TestDaemon, token: String?, actAs: String? = nil, tls: OrgdTLS? = nil) async throws -> [(transport: String, client: OrgdClient)] {
        let ttrpc = try await OrgdClient.connect(to: .tcp(host: "127.0.0.1", port: daemon.bound.tcpPort!), token: token, actAs: actAs, tls: tls)
        let grpc = try await OrgdClient.connect(to: .grpc(host: "127.0.0.1", port: daemon.grpcPort), token: token, actAs: actAs, tls: tls)
        return [("ttrpc", ttrpc), ("gRPC", grpc)]
    }

    /// What `body` gives on each client: its answer or its error.
    static func outcomes<Answer: Equatable>(
        _ clients: [(transport: String, client: OrgdClient)], _ body: (OrgdClient) async throws -> Answer
    ) async -> [Result<Answer, RPCError>] {
        var results: [Result<Answer, RPCError>] = []
        for (transport, client) in clients {
            do {
                results.append(.success(try await body(client)))
            } catch let error as RPCError {
                results.append(.failure(error))
            } catch {
                Issue.record("\(transport): not an RPCError: \(error)")
            }
        }
        return results
    }

    /// The error `body` throws on each client, which must be the same on both.
    static func sameError<Answer: Equatable>(
        _ clients: [(transport: String, client: OrgdClient)], _ what: String, _ body: (OrgdClient) async throws -> Answer,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> RPCError {
        let results = await outcomes(clients, body)
        try #require(results.count == 2, sourceLocation: sourceLocation)
        guard case .failure(let ttrpc) = results[0], case .failure(let grpc) = results[1] else {
            Issue.record("\(what): expected both to fail: \(results)", sourceLocation: sourceLocation)
            throw RPCError(.unknown, "no error")
        }
        #expect(ttrpc == grpc, "\(what): ttrpc \(ttrpc) \(ttrpc.fieldViolations), gRPC \(grpc) \(grpc.fieldViolations)", sourceLocation: sourceLocation)
        return ttrpc
    }

    @Test("equal answers: an organisation made on one transport reads the same on both; lists, health, an idempotent retry and act-as agree")
    func equalAnswers() async throws {
        try await Self.withBothTransports { daemon in
            let token = try await TLSTests.adminToken(daemon)
            let clients = try await Self.clients(daemon, token: token)
            let (ttrpc, grpc) = (clients[0].client, clients[1].client)

            // An idempotent create on ttrpc, retried on gRPC with the same
            // key: the same organisation, so idempotency-key went as metadata.
            var create = Orgd_V1_CreateOrganizationRequest()
            create.name = "Ward 7 Team"
            create.type = .hospitalTeam
            let key = CallOptions(idempotencyKey: UUID().uuidString)
            let created = try await ttrpc.organizations.createOrganization(create, options: key)
            #expect(try await grpc.organizations.createOrganization(create, options: key) == created)
            // Without the key gRPC makes another one.
            create.name = "Ward 8 Team"
            let second = try await grpc.organizations.createOrganization(create)
            #expect(second.id != created.id && second.name == "Ward 8 Team")

            var get = Orgd_V1_GetOrganizationRequest()
            get.id = created.id
            let reads = await Self.outcomes(clients) { try await $0.organizations.getOrganization(get) }
            #expect(reads.count == 2 && reads[0] == reads[1])
            #expect(try reads[0].get().organization == created)
            let lists = await Self.outcomes(clients) { try await $0.organizations.listOrganizations() }
            #expect(lists.count == 2 && lists[0] == lists[1])
            #expect(try lists[0].get().organizations.map(\.id).sorted() == [created.id, second.id].sorted())
            let health = await Self.outcomes(clients) { try await $0.health.check(options: CallOptions(timeout: .seconds(120))) }
            #expect(health.count == 2 && health[0] == health[1])
            #expect(try health[0].get().status == .serving)

            // A service account acting for a user (orgd-act-as) sees that user's profile on both.
            let local = try await daemon.client()
            defer { Task { await local.close() } }
            let person = try await MembershipEndToEndTests.user(local)
            let bff = try await daemon.serviceToken(role: .superadmin, mayActAs: true)
            let acting = try await Self.clients(daemon, token: bff.secret, actAs: person.id)
            let profiles = await Self.outcomes(acting) { try await $0.memberships.getProfile() }
            #expect(profiles.count == 2 && profiles[0] == profiles[1])
            #expect(try profiles[0].get().id == person.id)

            // Closed, both refuse further calls the same way.
            for (_, client) in clients + acting { await client.close() }
            let closed = await Self.outcomes(clients) { try await $0.organizations.getOrganization(get) }
            for result in closed {
                guard case .failure(let error) = result else { Issue.record("a call after close succeeded"); continue }
                #expect(error.code == .unavailable, "\(error)")
            }
        }
    }

    @Test("equal errors: NOT_FOUND naming its field, INVALID_ARGUMENT with its violation, PERMISSION_DENIED, UNAUTHENTICATED, an undecodable request")
    func equalErrors() async throws {
        try await Self.withBothTransports { daemon in
            let token = try await TLSTests.adminToken(daemon)
            let clients = try await Self.clients(daemon, token: token)
            let organization = try await MembershipEndToEndTests.organization(clients[0].client, "Ward 7 Team")

            var add = Orgd_V1_AddStaffMemberRequest()
            add.organizationID = organization.id
            add.userID = UUID().uuidString.lowercased()
            add.roles = [.agent]
            let notFound = try await Self.sameError(clients, "unknown user") { try await $0.memberships.addStaffMember(add) }
            #expect(notFound.code == .notFound && notFound.fieldViolations.map(\.field) == ["user_id"], "\(notFound)")

            let invalid = try await Self.sameError(clients, "no name") { try await $0.organizations.createOrganization() }
            #expect(invalid.code == .invalidArgument && !invalid.fieldViolations.isEmpty, "\(invalid)")

            let local = try await daemon.client()
            defer { Task { await local.close() } }
            let nobody = try await MembershipEndToEndTests.user(local)
            let roleless = try await Self.clients(daemon, token: try await MembershipEndToEndTests.token(local, user: nobody.id))
            let denied = try await Self.sameError(roleless, "role none") { try await $0.organizations.createOrganization(Self.named("Mine")) }
            #expect(denied.code == .permissionDenied, "\(denied)")

            let strangers = try await Self.clients(daemon, token: "orgd_nope")
            let unauthenticated = try await Self.sameError(strangers, "unknown token") { try await $0.organizations.listOrganizations() }
            #expect(unauthenticated.code == .unauthenticated, "\(unauthenticated)")

            // Bytes that are no CreateOrganizationRequest, through the transport-neutral raw call.
            let undecodable = try await Self.sameError(clients, "undecodable") {
                try await $0.connection.call(Orgd_V1_OrganizationService.Method.CreateOrganization.descriptor, payload: [0x0a, 0xff, 0xff])
            }
            #expect(undecodable.code == .invalidArgument && undecodable.message.contains("orgd.v1.CreateOrganizationRequest"), "\(undecodable)")

            for (_, client) in clients + roleless + strangers { await client.close() }
        }
    }

    @Test("a deadline: a call still waiting for the writer when its timeout passes is DEADLINE_EXCEEDED on both, and both connections go on", .sqliteOnly("holds SQLite's write lock"))
    func deadline() async throws {
        try await Self.withBothTransports { daemon in
            let token = try await TLSTests.adminToken(daemon)
            let clients = try await Self.clients(daemon, token: token)
            let (release, holder) = await LifecycleTests.holdWriterUntilReleased(daemon.store)
            // Hang guard: should the deadline not work, the writer is let go after a minute.
            let guardTask = Task {
                try? await Task.sleep(for: .seconds(60))
                release()
            }
            let late = await Self.outcomes(clients) {
                try await $0.organizations.createOrganization(Self.named("Too slow"), options: CallOptions(timeout: .milliseconds(200)))
            }
            guardTask.cancel()
            release()
            await holder.value
            #expect(late.count == 2)
            for (result, (transport, _)) in zip(late, clients) {
                guard case .failure(let error) = result else { Issue.record("\(transport): the late call succeeded"); continue }
                // The server's answer names its transport's header (timeout_nano
                // or grpc-timeout); on a loaded machine the client's own timer,
                // 250 ms later, may speak first. The code is the same either way.
                #expect(error.code == .deadlineExceeded, "\(transport): \(error)")
            }
            for (transport, client) in clients {
                #expect(try await client.health.check().status == .serving, "\(transport)")
                await client.close()
            }
        }
    }

    @Test("gRPC with TLS and mutual TLS from OrgdTLS, the certificate's name given for an address; no client certificate is UNAVAILABLE as on ttrpc")
    func tls() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        try await Self.withBothTransports(configure: {
            $0.tls = ServerTLS(
                certificateChainPath: certificates.serverCertificatePath, privateKeyPath: certificates.serverKeyPath,
                clientCAPath: certificates.caPath)
        }) { daemon in
            let token = try await TLSTests.adminToken(daemon)
            // The certificate is for localhost; both dial 127.0.0.1 and are told the name.
            let trusted = OrgdTLS(
                trustRootsPath: certificates.caPath, certificateChainPath: certificates.clientCertificatePath,
                privateKeyPath: certificates.clientKeyPath, serverHostname: "localhost")
            let clients = try await Self.clients(daemon, token: token, tls: trusted)
            let lists = await Self.outcomes(clients) { try await $0.organizations.listOrganizations() }
            #expect(lists.count == 2 && lists[0] == lists[1])
            #expect((try? lists[0].get().organizations) == [])
            for (_, client) in clients { await client.close() }

            let noCertificate = OrgdTLS(trustRootsPath: certificates.caPath, serverHostname: "localhost")
            await TLSTests.expectRefused("gRPC without a client certificate") {
                let client = try await OrgdClient.connect(to: .grpc(host: "127.0.0.1", port: daemon.grpcPort), token: token, tls: noCertificate)
                defer { Task { await client.close() } }
                _ = try await client.health.check(options: CallOptions(timeout: .seconds(30)))
            }
            // A file that is not there fails before any connection, as on ttrpc.
            let missing = OrgdTLS(trustRootsPath: certificates.directory + "/none.pem")
            for endpoint in [OrgdEndpoint.tcp(host: "127.0.0.1", port: daemon.bound.tcpPort!), .grpc(host: "127.0.0.1", port: daemon.grpcPort)] {
                let error = await rpcError { _ = try await OrgdClient.connect(to: endpoint, token: token, tls: missing) }
                #expect(error?.code == .invalidArgument && error?.message.contains("none.pem") == true, "\(endpoint): \(String(describing: error))")
            }
        }
    }

    @Test("grpc-timeout is the finest unit that holds the timeout in eight digits, rounded up", arguments: [
        (Int64(1), "1n"), (99_999_999, "99999999n"), (100_000_000, "100000u"), (200_000_001, "200001u"),
        (120_000_000_000, "120000m"), (100_000_000_000_000, "100000S"), (Int64.max, "2562048H"),
    ])
    func grpcTimeout(nanoseconds: Int64, header: String) {
        #expect(GRPCTimeout.header(nanoseconds: nanoseconds) == header)
    }

    static func named(_ name: String) -> Orgd_V1_CreateOrganizationRequest {
        var request = Orgd_V1_CreateOrganizationRequest()
        request.name = name
        request.type = .department
        return request
    }
}
