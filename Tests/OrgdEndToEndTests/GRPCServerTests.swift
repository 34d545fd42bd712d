import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import OrgdClient
import OrgdCore
import OrgdProto
import OrgdServer
import OrgdWire
import SwiftProtobuf
import Testing

/// gRPC beside ttrpc, end to end: a real daemon listening on a real gRPC
/// port, called with grpc-swift-2's STOCK generated clients over
/// grpc-swift-nio-transport — nothing of ours on the client side.
@Suite("gRPC server")
struct GRPCServerTests {
    typealias Client = GRPCClient<HTTP2ClientTransport.Posix>

    /// A daemon with gRPC on 127.0.0.1, port 0.
    static func withGRPCDaemon(configure: (inout ServerConfiguration) -> Void = { _ in }, _ body: (TestDaemon) async throws -> Void) async throws {
        try await withDaemon(configure: { configuration in
            configuration.grpcHost = "127.0.0.1"
            configure(&configuration)
        }, body)
    }

    /// Runs `body` with a stock gRPC client connected to the daemon's gRPC port.
    static func withClient<Result: Sendable>(
        _ daemon: TestDaemon, security: HTTP2ClientTransport.Posix.TransportSecurity = .plaintext,
        _ body: (Client) async throws -> Result
    ) async throws -> Result {
        var config = HTTP2ClientTransport.Posix.Config.defaults
        // The test certificate is for the name localhost; the daemon is on 127.0.0.1.
        config.http2.authority = "localhost"
        let transport = try HTTP2ClientTransport.Posix(
            target: .ipv4(address: "127.0.0.1", port: daemon.grpcPort), transportSecurity: security, config: config)
        return try await withGRPCClient(transport: transport, handleClient: body)
    }

    static func bearer(_ token: String) -> GRPCCore.Metadata {
        ["authorization": "Bearer \(token)"]
    }

    /// The `google.rpc.Status` a failed call carried in `grpc-status-details-bin`.
    static func details(_ error: GRPCCore.RPCError) throws -> Google_Rpc_Status {
        let values = Array(error.metadata[binaryValues: "grpc-status-details-bin"])
        try #require(values.count == 1, "one grpc-status-details-bin trailer: \(error.metadata)")
        return try Google_Rpc_Status(serializedBytes: values[0])
    }

    static func grpcError(_ body: () async throws -> Void) async -> GRPCCore.RPCError? {
        do {
            try await body()
            return nil
        } catch let error as GRPCCore.RPCError {
            return error
        } catch {
            Issue.record("not an RPCError: \(error)")
            return nil
        }
    }

    @Test("a call with a token works; none is UNAUTHENTICATED; a missing field is INVALID_ARGUMENT with its BadRequest violation in grpc-status-details-bin; bytes that do not decode are INVALID_ARGUMENT from the Dispatcher")
    func callsAndErrors() async throws {
        try await Self.withGRPCDaemon { daemon in
            let token = try await TLSTests.adminToken(daemon)
            try await Self.withClient(daemon) { client in
                let organizations = Orgd_V1_OrganizationService.Client(wrapping: client)
                var create = Orgd_V1_CreateOrganizationRequest()
                create.name = "Over gRPC"
                create.type = .department
                let created = try await organizations.createOrganization(create, metadata: Self.bearer(token))
                #expect(created.name == "Over gRPC" && created.version == 1)
                var get = Orgd_V1_GetOrganizationRequest()
                get.id = created.id
                #expect(try await organizations.getOrganization(get, metadata: Self.bearer(token)).organization == created)

                let anonymous = await Self.grpcError { _ = try await organizations.listOrganizations(.init()) }
                #expect(anonymous?.code == .unauthenticated)
                let wrongToken = await Self.grpcError { _ = try await organizations.listOrganizations(.init(), metadata: Self.bearer("nope")) }
                #expect(wrongToken?.code == .unauthenticated)

                var nameless = Orgd_V1_CreateOrganizationRequest()
                nameless.type = .department
                let invalid = try #require(await Self.grpcError { _ = try await organizations.createOrganization(nameless, metadata: Self.bearer(token)) })
                #expect(invalid.code == .invalidArgument)
                let status = try Self.details(invalid)
                #expect(status.code == StatusCode.invalidArgument.rawValue && status.message == invalid.message)
                let badRequest = try #require(status.details.first.map { try Google_Rpc_BadRequest(unpackingAny: $0) })
                #expect(badRequest.fieldViolations.map { [$0.field, $0.description_p] } == [["name", "required"]])

                // Bytes that are no CreateOrganizationRequest: field 1 says 5 bytes follow, and 1 does.
                let raw = await Self.grpcError {
                    _ = try await client.unary(
                        request: ClientRequest(message: [0x0A, 0x05, 0x61], metadata: Self.bearer(token)),
                        descriptor: Orgd_V1_OrganizationService.Method.CreateOrganization.descriptor,
                        serializer: RawBytes(), deserializer: RawBytes(), options: .defaults) { try $0.message }
                }
                #expect(raw?.code == .invalidArgument && raw?.message.contains("does not decode") == true, "\(String(describing: raw))")
                client.beginGracefulShutdown()
            }
        }
    }

    @Test("orgd-act-as over gRPC: a service account acting for an admin is audited as acting for them")
    func actAs() async throws {
        try await Self.withGRPCDaemon { daemon in
            let local = try await daemon.client()
            let admin = try await MembershipEndToEndTests.user(local, role: .admin)
            let organization = try await MembershipEndToEndTests.organization(local, "Acted on")
            let account = try await daemon.serviceToken(role: .admin, mayActAs: true)
            try await Self.withClient(daemon) { client in
                var metadata = Self.bearer(account.secret)
                metadata.addString(admin.id, forKey: "orgd-act-as")
                var deactivate = Orgd_V1_DeactivateOrganizationRequest()
                deactivate.id = organization.id
                _ = try await Orgd_V1_OrganizationService.Client(wrapping: client).deactivateOrganization(deactivate, metadata: metadata)
                // Acting for nobody is refused.
                var other = Self.bearer(account.secret)
                other.addString(UUID().uuidString, forKey: "orgd-act-as")
                let refused = await Self.grpcError {
                    _ = try await Orgd_V1_OrganizationService.Client(wrapping: client).listOrganizations(.init(), metadata: other)
                }
                #expect(refused?.code == .permissionDenied && refused?.message.contains("orgd-act-as") == true, "\(String(describing: refused))")
                client.beginGracefulShutdown()
            }
            let last = try #require(try await local.audit.listAuditLog().entries.last)
            #expect(last.method == "orgd.v1.OrganizationService/DeactivateOrganization" && last.actingFor == admin.id)
            await local.close()
        }
    }

    @Test("grpc-timeout: a call still running at its deadline is answered DEADLINE_EXCEEDED by the server (the client has no timer of its own), and the daemon goes on serving", .sqliteOnly("holds SQLite's write lock to keep a call running"))
    func deadline() async throws {
        try await Self.withGRPCDaemon { daemon in
            let token = try await TLSTests.adminToken(daemon)
            let (release, holder) = await LifecycleTests.holdWriterUntilReleased(daemon.store)
            try await Self.withClient(daemon) { client in
                let organizations = Orgd_V1_OrganizationService.Client(wrapping: client)
                // No CallOptions.timeout: the header alone, so only the server can answer the deadline.
                var metadata = Self.bearer(token)
                metadata.addString("200m", forKey: "grpc-timeout")
                // Hang guard: without the server's deadline the call would wait for the held writer.
                let guardTask = Task {
                    try? await Task.sleep(for: .seconds(60))
                    release()
                }
                let error = await Self.grpcError {
                    _ = try await organizations.createOrganization(LifecycleTests.createRequest("Too slow"), metadata: metadata)
                }
                guardTask.cancel()
                #expect(error?.code == .deadlineExceeded, "\(String(describing: error))")
                #expect(error?.message.contains("grpc-timeout") == true, "the server's answer, not the client's: \(String(describing: error))")
                // The daemon still serves, on the same gRPC connection.
                let health = try await Grpc_Health_V1_Health.Client(wrapping: client).check(.init())
                #expect(health.status == .serving)
                release()
                await holder.value
                // A generous stock deadline (CallOptions.timeout) succeeds.
                var options = CallOptions.defaults
                options.timeout = .seconds(120)
                _ = try await organizations.listOrganizations(.init(), metadata: Self.bearer(token), options: options)
                client.beginGracefulShutdown()
            }
        }
    }

    @Test("health: Check through the Dispatcher with no token; Watch streams SERVING, then NOT_SERVING when the daemon drains, then ends")
    func health() async throws {
        let daemon = try await TestDaemon.start(configure: { $0.grpcHost = "127.0.0.1" })
        do {
            try await Self.withClient(daemon) { client in
                let health = Grpc_Health_V1_Health.Client(wrapping: client)
                #expect(try await health.check(.init()).status == .serving)
                var organizationService = Grpc_Health_V1_HealthCheckRequest()
                organizationService.service = "orgd.v1.OrganizationService"
                #expect(try await health.check(organizationService).status == .serving)
                var unknown = Grpc_Health_V1_HealthCheckRequest()
                unknown.service = "no.such.Service"
                #expect(await Self.grpcError { _ = try await health.check(unknown) }?.code == .notFound)
                #expect(daemon.answeredCalls("grpc.health.v1.Health/Check") >= 3, "Check is counted by the Dispatcher")

                let (seen, record) = AsyncStream<Grpc_Health_V1_HealthCheckResponse.ServingStatus>.makeStream()
                let watch = Task {
                    try await health.watch(organizationService) { response in
                        for try await message in response.messages { record.yield(message.status) }
                        record.finish()
                    }
                }
                var statuses = seen.makeAsyncIterator()
                #expect(await statuses.next() == .serving)
                let shutdown = Task { await daemon.server.shutdown() }
                #expect(await statuses.next() == .notServing)
                #expect(await statuses.next() == nil, "the stream ends once NOT_SERVING is sent")
                try await watch.value
                await shutdown.value
            }
        } catch {
            await daemon.stop()
            throw error
        }
        await daemon.stop()
    }

    @Test("TLS and mutual TLS with the TCP listener's files: a trusted client calls; without a client certificate mutual TLS refuses it")
    func tls() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        try await Self.withGRPCDaemon(configure: {
            $0.tls = ServerTLS(
                certificateChainPath: certificates.serverCertificatePath, privateKeyPath: certificates.serverKeyPath,
                clientCAPath: certificates.caPath)
        }) { daemon in
            #expect(daemon.bound.grpcTLS)
            let token = try await TLSTests.adminToken(daemon)
            let trusted = HTTP2ClientTransport.Posix.TransportSecurity.mTLS(
                certificateChain: [.file(path: certificates.clientCertificatePath, format: .pem)],
                privateKey: .file(path: certificates.clientKeyPath, format: .pem)
            ) { $0.trustRoots = .certificates([.file(path: certificates.caPath, format: .pem)]) }
            try await Self.withClient(daemon, security: trusted) { client in
                let listed = try await Orgd_V1_OrganizationService.Client(wrapping: client).listOrganizations(.init(), metadata: Self.bearer(token))
                #expect(listed.organizations.isEmpty)
                client.beginGracefulShutdown()
            }
            let noCertificate = HTTP2ClientTransport.Posix.TransportSecurity.tls {
                $0.trustRoots = .certificates([.file(path: certificates.caPath, format: .pem)])
            }
            try await Self.withClient(daemon, security: noCertificate) { client in
                var options = CallOptions.defaults
                options.timeout = .seconds(30)
                let refused = await Self.grpcError {
                    _ = try await Grpc_Health_V1_Health.Client(wrapping: client).check(.init(), options: options)
                }
                #expect(refused?.code == .unavailable, "\(String(describing: refused))")
                client.beginGracefulShutdown()
            }
        }
    }

    @Test("limits: a message larger than the largest frame is refused; gRPC connections count against the TCP connection budget")
    func limits() async throws {
        try await Self.withGRPCDaemon(configure: {
            $0.maximumFrameLength = 1024
            $0.maximumConnections = 1
        }) { daemon in
            try await Self.withClient(daemon) { client in
                var big = Orgd_V1_GetOrganizationRequest()
                big.id = String(repeating: "x", count: 4096)
                let refused = await Self.grpcError { _ = try await Orgd_V1_OrganizationService.Client(wrapping: client).getOrganization(big) }
                // grpc-swift's transport refuses it as it reads the length
                // (RESOURCE_EXHAUSTED, which it answers by resetting the
                // stream: its client sees UNAVAILABLE); it never reaches the
                // Dispatcher, which would say UNAUTHENTICATED (no token).
                #expect(refused?.code == .resourceExhausted || refused?.code == .unavailable, "\(String(describing: refused))")
                #expect(daemon.answeredCalls("orgd.v1.OrganizationService/GetOrganization") == 0)
                let health = try await Grpc_Health_V1_Health.Client(wrapping: client).check(.init())
                #expect(health.status == .serving)
                // This connection holds the one TCP slot: a ttrpc TCP client is refused.
                let second = await rpcError {
                    let tcp = try await OrgdClient.connect(to: daemon.tcp, token: "x")
                    defer { Task { await tcp.close() } }
                    _ = try await tcp.health.check()
                }
                #expect(second?.code == .unavailable, "\(String(describing: second))")
                client.beginGracefulShutdown()
            }
        }
    }
}
