import Foundation
import NIOCore
import NIOPosix
import OrgdClient
import OrgdCore
import OrgdProto
import NIOConcurrencyHelpers
import Testing

/// A client given several daemons' addresses (issue 15 item 7): two real
/// daemons, each on its own database, so the data tells which one answered.
@Suite("a client with several addresses")
struct FailoverTests {
    @Test("one of two daemons stops: the client's next calls go to the other")
    func nextCallsGoToTheOther() async throws {
        let first = try await TestDaemon.start()
        let second = try await TestDaemon.start()
        defer { Task { await second.stop() } }
        let client = try await OrgdClient.connect(to: [first.unix, second.unix])
        #expect(client.connection.endpoints == [first.unix, second.unix])
        _ = try await MembershipEndToEndTests.organization(client, "Before")
        #expect(try await Self.names(first) == ["Before"])
        #expect(try await Self.names(second) == [])

        await first.stop()
        _ = try await MembershipEndToEndTests.organization(client, "After")
        #expect(try await client.organizations.listOrganizations().organizations.map(\.name) == ["After"])
        #expect(try await Self.names(second) == ["After"])
        await client.close()
    }

    @Test("a call in flight when its connection drops fails UNAVAILABLE and is not sent again; the next goes on")
    func inFlightNotReplayed() async throws {
        try await withDaemon { daemon in
            let hangUp = try await HangUpServer.start()
            let client = try await OrgdClient.connect(to: [hangUp.endpoint, daemon.unix])
            var request = Orgd_V1_CreateOrganizationRequest()
            request.name = "Once"
            request.type = .hospitalTeam
            let error = await #expect(throws: RPCError.self) { try await client.organizations.createOrganization(request) }
            #expect(error?.code == .unavailable)
            #expect(error?.message.contains("not sent again") == true)
            #expect(hangUp.requests() == 1)
            #expect(daemon.answeredCalls("orgd.v1.OrganizationService/CreateOrganization") == 0)
            #expect(try await Self.names(daemon) == [])
            // The next call goes to the next address.
            #expect(try await client.organizations.listOrganizations().organizations.isEmpty)
            #expect(daemon.answeredCalls("orgd.v1.OrganizationService/ListOrganizations") >= 1)
            #expect(hangUp.requests() == 1)
            await client.close()
            await hangUp.stop()
        }
    }

    @Test("every address down: connect and later calls fail UNAVAILABLE naming each address")
    func allDown() async throws {
        let first = try await TestDaemon.start()
        let second = try await TestDaemon.start()
        let addresses = [first.unix, second.unix]
        let client = try await OrgdClient.connect(to: addresses)
        _ = try await client.organizations.listOrganizations()
        await first.stop()
        await second.stop()
        let call = await #expect(throws: RPCError.self) { try await client.organizations.listOrganizations() }
        #expect(call?.code == .unavailable)
        for address in addresses { #expect(call?.message.contains("\(address)") == true, "\(call?.message ?? "")") }
        await client.close()

        let connect = await #expect(throws: RPCError.self) { try await OrgdClient.connect(to: addresses) }
        #expect(connect?.code == .unavailable)
        for address in addresses { #expect(connect?.message.contains("\(address)") == true, "\(connect?.message ?? "")") }
    }

    @Test("orgctl --address a,b (and ORGD_ADDRESS, --grpc a,b) goes to the daemon that answers; all down is UNAVAILABLE naming both")
    func orgctlAddresses() async throws {
        try await withDaemon(configure: { $0.grpcHost = "127.0.0.1" }) { daemon in
            // A port nothing listens on: bound, then closed.
            let gone = try await TestDaemon.start()
            let goneAddress = "127.0.0.1:\(gone.bound.tcpPort!)"
            await gone.stop()
            let live = "127.0.0.1:\(daemon.bound.tcpPort!)"
            let flag = try await Subprocess.run("orgctl", ["health", "--address", "\(goneAddress),\(live)"])
            #expect(flag.status == 0 && flag.stdout.contains("SERVING"), "\(flag.stderr)")
            let environment = try await Subprocess.run("orgctl", ["health"], environment: ["ORGD_ADDRESS": "\(goneAddress),\(live)"])
            #expect(environment.status == 0 && environment.stdout.contains("SERVING"), "\(environment.stderr)")
            let grpc = try await Subprocess.run("orgctl", ["health", "--grpc", "\(goneAddress),127.0.0.1:\(daemon.grpcPort)"])
            #expect(grpc.status == 0 && grpc.stdout.contains("SERVING"), "\(grpc.stderr)")
            let down = try await Subprocess.run("orgctl", ["health", "--address", "\(goneAddress),\(goneAddress)"])
            #expect(down.status == 24 && down.stderr.hasPrefix("orgctl: UNAVAILABLE: cannot connect to orgd at any of its 2 addresses"), "\(down.stderr)")
            #expect(down.stderr.components(separatedBy: "tcp:\(goneAddress)").count == 3, "\(down.stderr)")
            let bad = try await Subprocess.run("orgctl", ["health", "--address", "\(live),nonsense"])
            #expect(bad.status != 0 && bad.stderr.contains("--address must be HOST:PORT"), "\(bad.stderr)")
        }
    }

    /// The organisations `daemon`'s own database holds, by name.
    static func names(_ daemon: TestDaemon) async throws -> [String] {
        let local = try await daemon.client()
        defer { Task { await local.close() } }
        return try await local.organizations.listOrganizations().organizations.map(\.name)
    }
}

/// A server on a Unix socket that takes a connection, reads a request and
/// hangs up without answering: a daemon that dies with a call in flight.
final class HangUpServer: Sendable {
    private let channel: Channel
    private let directory: String
    private let received: Counter
    let endpoint: OrgdEndpoint

    private init(channel: Channel, directory: String, received: Counter, endpoint: OrgdEndpoint) {
        self.channel = channel
        self.directory = directory
        self.received = received
        self.endpoint = endpoint
    }

    static func start() async throws -> HangUpServer {
        let directory = try TestDaemon.makeTemporaryDirectory()
        let path = directory + "/h"
        let received = Counter()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture { try child.pipeline.syncOperations.addHandler(HangUp(received: received)) }
            }
            .bind(unixDomainSocketPath: path).get()
        return HangUpServer(channel: channel, directory: directory, received: received, endpoint: .unix(path: path))
    }

    /// How many connections sent something before being hung up on.
    func requests() -> Int { received.value.withLockedValue { $0 } }

    func stop() async {
        try? await channel.close()
        try? FileManager.default.removeItem(atPath: directory)
    }

    final class Counter: Sendable {
        let value = NIOLockedValueBox(0)
    }

    private final class HangUp: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let received: Counter
        init(received: Counter) { self.received = received }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            received.value.withLockedValue { $0 += 1 }
            context.close(promise: nil)
        }
    }
}
