import Foundation
import OrgdClient
import OrgdCore
import OrgdProto
import OrgdWire
import Testing

/// Misbehaving clients on a raw socket. Each case checks the precise answer,
/// that the same connection still serves a good call where ttrpc keeps it
/// open, and that a second, well-behaved connection is served throughout.
@Suite("bad input end to end")
struct BadInputTests {
    static let health = ("grpc.health.v1.Health", "Check")

    /// A good call on `socket`, expected to be answered SERVING on `streamID`.
    static func expectServes(_ socket: RawSocket, streamID: UInt32) async throws {
        try await socket.sendRequest(streamID: streamID, service: health.0, method: health.1)
        let (id, response) = try await socket.receiveResponse()
        #expect(id == streamID && response.status.code == 0)
        #expect(try Grpc_Health_V1_HealthCheckResponse(serializedBytes: response.payload).status == .serving)
    }

    /// The other connection is still served.
    static func expectOthersServed(_ other: OrgdClient) async throws {
        #expect(try await other.health.check().status == .serving)
        _ = try await other.organizations.listOrganizations(.init())
    }

    @Test("garbage that parses as a huge frame is RESOURCE_EXHAUSTED; others are served")
    func garbage() async throws {
        try await withDaemon { daemon in
            let other = try await daemon.client()
            let socket = try RawSocket(unixPath: daemon.bound.unixSocketPath!)
            try await socket.send(Array("GET / HTTP/1.1\r\nHost: orgd\r\n\r\n".utf8))
            let (streamID, response) = try await socket.receiveResponse()
            #expect(streamID == 0x2f20_4854) // "/ HT", where the stream id would be
            #expect(response.status.code == StatusCode.resourceExhausted.rawValue)
            try await Self.expectOthersServed(other)
            await other.close()
        }
    }

    @Test("a well-framed envelope that does not decode is INVALID_ARGUMENT, and the connection goes on")
    func undecodableEnvelope() async throws {
        try await withDaemon { daemon in
            let other = try await daemon.client()
            let socket = try RawSocket(unixPath: daemon.bound.unixSocketPath!)
            try await socket.sendFrame(streamID: 1, body: [0xff, 0xff, 0xff, 0xff, 0xff])
            let (streamID, response) = try await socket.receiveResponse()
            #expect(streamID == 1 && response.status.code == StatusCode.invalidArgument.rawValue)
            #expect(response.status.message.hasPrefix("unmarshal request error"))
            try await Self.expectServes(socket, streamID: 3)
            try await Self.expectOthersServed(other)
            await other.close()
        }
    }

    @Test("an oversized frame is RESOURCE_EXHAUSTED on its stream, its bytes skipped, the connection usable")
    func oversized() async throws {
        try await withDaemon(maximumFrameLength: 64 * 1024) { daemon in
            let other = try await daemon.client()
            let socket = try RawSocket(unixPath: daemon.bound.unixSocketPath!)
            try await socket.sendRequest(streamID: 1, service: Self.health.0, method: Self.health.1, payload: Array(repeating: 0x41, count: 100_000))
            let (streamID, response) = try await socket.receiveResponse()
            #expect(streamID == 1 && response.status.code == StatusCode.resourceExhausted.rawValue)
            #expect(response.status.message.contains("exceed maximum message size of 65536"))
            try await Self.expectServes(socket, streamID: 3)
            try await Self.expectOthersServed(other)
            await other.close()
        }
    }

    @Test("the default limit is 4 MiB: a 4 MiB + 1 frame is refused, then the connection serves")
    func defaultLimit() async throws {
        try await withDaemon { daemon in
            let socket = try RawSocket(unixPath: daemon.bound.unixSocketPath!)
            try await socket.sendFrame(streamID: 1, body: Array(repeating: 0, count: (4 << 20) + 1))
            let (streamID, response) = try await socket.receiveResponse()
            #expect(streamID == 1 && response.status.code == StatusCode.resourceExhausted.rawValue)
            try await Self.expectServes(socket, streamID: 3)
        }
    }

    @Test("unknown service or method: UNIMPLEMENTED; an undecodable payload: INVALID_ARGUMENT")
    func unknownMethodAndBadPayload() async throws {
        try await withDaemon { daemon in
            let other = try await daemon.client()
            let socket = try RawSocket(unixPath: daemon.bound.unixSocketPath!)
            try await socket.sendRequest(streamID: 1, service: "orgd.v1.OrganizationService", method: "DropAllTables")
            let unknown = try await socket.receiveResponse()
            #expect(unknown.streamID == 1 && unknown.response.status.code == StatusCode.unimplemented.rawValue)
            #expect(unknown.response.status.message == "method DropAllTables")
            try await socket.sendRequest(streamID: 3, service: "orgd.v9.Nothing", method: "X")
            #expect(try await socket.receiveResponse().response.status.message == "service orgd.v9.Nothing")
            try await socket.sendRequest(streamID: 5, service: "orgd.v1.OrganizationService", method: "CreateOrganization", payload: [0x12, 0x80])
            let bad = try await socket.receiveResponse()
            #expect(bad.streamID == 5 && bad.response.status.code == StatusCode.invalidArgument.rawValue)
            try await Self.expectServes(socket, streamID: 7)
            try await Self.expectOthersServed(other)
            #expect(try await other.organizations.listOrganizations(.init()).organizations.isEmpty, "nothing half-written")
            await other.close()
        }
    }

    @Test("an even or reused stream id is INVALID_ARGUMENT on that stream; the connection goes on")
    func streamIDs() async throws {
        try await withDaemon { daemon in
            let socket = try RawSocket(unixPath: daemon.bound.unixSocketPath!)
            try await socket.sendRequest(streamID: 2, service: Self.health.0, method: Self.health.1)
            let even = try await socket.receiveResponse()
            #expect(even.streamID == 2 && even.response.status.code == StatusCode.invalidArgument.rawValue)
            #expect(even.response.status.message == "StreamID must be odd for client initiated streams")
            try await Self.expectServes(socket, streamID: 5)
            try await socket.sendRequest(streamID: 5, service: Self.health.0, method: Self.health.1)
            let reused = try await socket.receiveResponse()
            #expect(reused.streamID == 5 && reused.response.status.code == StatusCode.invalidArgument.rawValue)
            try await socket.sendRequest(streamID: 3, service: Self.health.0, method: Self.health.1)
            #expect(try await socket.receiveResponse().response.status.code == StatusCode.invalidArgument.rawValue)
            try await Self.expectServes(socket, streamID: 7)
        }
    }

    @Test("frames of unknown type, and stray responses, are skipped without an answer")
    func unknownFrameTypes() async throws {
        try await withDaemon { daemon in
            let socket = try RawSocket(unixPath: daemon.bound.unixSocketPath!)
            try await socket.sendFrame(streamID: 1, type: MessageType(rawValue: 0x42), body: [1, 2, 3])
            try await socket.sendFrame(streamID: 3, type: .response, body: [])
            try await socket.sendFrame(streamID: 5, type: .data, body: [9])
            // The first answer to arrive is the one for the good call after them.
            try await Self.expectServes(socket, streamID: 7)
        }
    }

    @Test("a client that disconnects mid-frame or mid-call does not disturb others")
    func abruptDisconnects() async throws {
        try await withDaemon { daemon in
            let other = try await daemon.client()
            for _ in 0..<20 {
                let socket = try RawSocket(unixPath: daemon.bound.unixSocketPath!)
                try await socket.send([0, 0, 0, 50, 0, 0, 0, 1, 1, 0, 1, 2])
            }
            for _ in 0..<20 {
                let socket = try RawSocket(unixPath: daemon.bound.unixSocketPath!)
                var create = Orgd_V1_CreateOrganizationRequest()
                create.name = "Left behind"
                create.type = .department
                try await socket.sendRequest(streamID: 1, service: "orgd.v1.OrganizationService", method: "CreateOrganization", payload: try create.serializedBytes())
            }
            try await Self.expectOthersServed(other)
            await other.close()
        }
    }
}
