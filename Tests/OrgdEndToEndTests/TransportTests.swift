import Foundation
import OrgdClient
import OrgdCore
import OrgdProto
import Testing

@Suite("transports and authentication end to end")
struct TransportTests {
    @Test("TCP without a token is refused; with a token it works; revoked it is refused again")
    func tcpTokens() async throws {
        try await withDaemon { daemon in
            let anonymous = try await daemon.client(daemon.tcp)
            let refused = await rpcError { _ = try await anonymous.organizations.listOrganizations(.init()) }
            #expect(refused?.code == .unauthenticated)
            // The refusal does not close the connection.
            #expect(try await anonymous.health.check().status == .serving)

            let admin = try await daemon.serviceToken(role: .admin)
            let authorised = try await daemon.client(daemon.tcp, token: admin.secret)
            _ = try await authorised.organizations.listOrganizations(.init())

            let local = try await daemon.client()
            var revoke = Orgd_V1_RevokeTokenRequest()
            revoke.id = admin.id
            _ = try await local.tokens.revokeToken(revoke)
            let revoked = await rpcError { _ = try await authorised.organizations.listOrganizations(.init()) }
            #expect(revoked?.code == .unauthenticated)
            for client in [anonymous, authorised, local] { await client.close() }
        }
    }

    @Test("a token's secret is shown once and never listed")
    func secretShownOnce() async throws {
        try await withDaemon { daemon in
            let admin = try await daemon.serviceToken(role: .admin)
            let local = try await daemon.client()
            let listed = try await local.tokens.listTokens(.init())
            #expect(listed.tokens.count == 1)
            let text = try listed.jsonString()
            #expect(!text.contains(admin.secret))
            #expect(admin.secret.hasPrefix(listed.tokens[0].prefix))
            await local.close()
        }
    }

    @Test("the Unix socket is created with mode 0600")
    func socketMode() async throws {
        try await withDaemon { daemon in
            let attributes = try FileManager.default.attributesOfItem(atPath: daemon.bound.unixSocketPath!)
            #expect((attributes[.posixPermissions] as? Int) == 0o600)
        }
    }

    @Test("the shared test vectors: each request frame gets exactly its response frame from a fresh daemon")
    func vectorsAgainstDaemon() async throws {
        try await withDaemon { daemon in
            let socket = try RawSocket(unixPath: daemon.bound.unixSocketPath!)
            for vector in try Vectors.load() {
                try await socket.send([UInt8](hex: vector.request_frame_hex))
                let (header, data) = try await socket.receiveFrame()
                var frame: [UInt8] = []
                frame += withUnsafeBytes(of: header.length.bigEndian, Array.init)
                frame += withUnsafeBytes(of: header.streamID.bigEndian, Array.init)
                frame += [header.type.rawValue, header.flags]
                #expect((frame + data).hex == vector.response_frame_hex, "\(vector.name)")
            }
        }
    }
}

/// The shared vectors file (the wire tests decode it fully; here only the frames matter).
enum Vectors {
    struct Vector: Decodable {
        var name: String
        var request_frame_hex: String
        var response_frame_hex: String
    }

    struct File: Decodable { var vectors: [Vector] }

    static func load() throws -> [Vector] {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return try JSONDecoder().decode(File.self, from: Data(contentsOf: root.appendingPathComponent("testdata/ttrpc-vectors.json"))).vectors
    }
}

extension Array where Element == UInt8 {
    init(hex: String) {
        self = stride(from: 0, to: hex.count, by: 2).map {
            let start = hex.index(hex.startIndex, offsetBy: $0)
            return UInt8(hex[start..<hex.index(start, offsetBy: 2)], radix: 16)!
        }
    }

    var hex: String { map { String(format: "%02x", $0) }.joined() }
}

@Suite("client after the server goes away", .timeLimit(.minutes(1)))
struct ClosedConnectionTests {
    @Test("a call on a connection the server has closed fails with UNAVAILABLE instead of waiting for ever")
    func callAfterClose() async throws {
        let daemon = try await TestDaemon.start()
        let client = try await daemon.client()
        #expect(try await client.health.check().status == .serving)
        await daemon.stop()
        for _ in 0..<3 {
            let error = await rpcError { _ = try await client.health.check(options: CallOptions(timeout: .seconds(30))) }
            #expect(error?.code == .unavailable)
        }
        await client.close()
    }
}
