import Foundation
import NIOConcurrencyHelpers
import NIOCore
import OrgdClient
import OrgdCore
import OrgdProto
import OrgdWire
import Testing

/// Each limit, set small, is enforced — and the daemon goes on serving
/// everyone else. (The time limit only turns a hang into a failure: under
/// ThreadSanitizer on a loaded 2-core machine the back-pressure test alone has
/// taken over a minute.)
@Suite("limits", .timeLimit(.minutes(3)))
struct LimitTests {
    static func healthFrame(_ streamID: UInt32) throws -> [UInt8] {
        var request = Ttrpc_Request()
        request.service = "grpc.health.v1.Health"
        request.method = "Check"
        return try request.serializedBytes()
    }

    @Test("past the connection limit new connections are closed; existing ones are served")
    func connections() async throws {
        try await withDaemon(configure: { $0.maximumUnixConnections = 3 }) { daemon in
            var held: [RawSocket] = []
            for streamID in [UInt32(1), 1, 1] {
                let socket = try RawSocket(unixPath: daemon.bound.unixSocketPath!)
                try await socket.sendFrame(streamID: streamID, body: try Self.healthFrame(streamID))
                #expect(try await socket.receiveResponse().response.status.code == 0)
                held.append(socket)
            }
            let extra = try RawSocket(unixPath: daemon.bound.unixSocketPath!)
            #expect(try await extra.closedByServer(within: 5), "the fourth connection is closed at once")
            try await held[0].sendFrame(streamID: 3, body: try Self.healthFrame(3))
            #expect(try await held[0].receiveResponse().response.status.code == 0)
            held.removeAll()
            // Once one closes, a new connection is accepted again.
            var accepted = false
            for _ in 0..<250 where !accepted {
                try await Task.sleep(for: .milliseconds(20))
                if let client = try? await daemon.client(), (try? await client.health.check()) != nil {
                    accepted = true
                    await client.close()
                }
            }
            #expect(accepted)
        }
    }

    @Test("past the in-flight limit a call is RESOURCE_EXHAUSTED at once; the others finish")
    func callsInFlight() async throws {
        try await withDaemon(configure: { $0.maximumCallsPerConnection = 4 }) { daemon in
            // The writer stays held until the refusals have been seen, so the
            // first four calls are certainly still in flight when the last two arrive.
            let (release, holder) = await LifecycleTests.holdWriterUntilReleased(daemon.store)
            let socket = try RawSocket(unixPath: daemon.bound.unixSocketPath!)
            var frames: [UInt8] = []
            for (index, streamID) in stride(from: UInt32(1), through: 11, by: 2).enumerated() {
                var request = Ttrpc_Request()
                request.service = "orgd.v1.OrganizationService"
                request.method = "CreateOrganization"
                request.payload = try LifecycleTests.createRequest("Limited \(index)").serializedData()
                frames += RawSocket.frame(streamID: streamID, body: try request.serializedBytes())
            }
            try await socket.send(frames)
            var refused: [UInt32] = []
            for _ in 0..<2 {
                let (streamID, response) = try await socket.receiveResponse()
                #expect(response.status.code == StatusCode.resourceExhausted.rawValue)
                refused.append(streamID)
            }
            #expect(refused.sorted() == [9, 11])
            release()
            for _ in 0..<4 {
                let (streamID, response) = try await socket.receiveResponse()
                #expect(response.status.code == 0 && streamID <= 7)
            }
            await holder.value
        }
    }

    @Test("oversized metadata is RESOURCE_EXHAUSTED and the connection goes on")
    func metadata() async throws {
        try await withDaemon(configure: { $0.maximumMetadataBytes = 1024 }) { daemon in
            let client = try await daemon.client()
            let big = CallOptions(metadata: [("x-padding", String(repeating: "a", count: 2000))])
            let error = await rpcError { _ = try await client.health.check(options: big) }
            #expect(error?.code == .resourceExhausted && error?.message.contains("metadata") == true)
            #expect(try await client.health.check().status == .serving)
            await client.close()
        }
    }

    @Test("a frame that starts and never finishes gets its connection closed; others are served")
    func trickle() async throws {
        try await withDaemon(configure: { $0.frameTimeout = .milliseconds(300) }) { daemon in
            let slow = try RawSocket(unixPath: daemon.bound.unixSocketPath!)
            try await slow.send([0, 0, 0, 40, 0, 0, 0, 1, 1])
            let other = try await daemon.client()
            #expect(try await other.health.check().status == .serving)
            #expect(try await slow.closedByServer(within: 5))
            #expect(try await other.health.check().status == .serving)
            await other.close()
        }
    }

    @Test("the frame timeout is per frame: a steady stream whose reads always end mid-frame is not cut off")
    func frameTimeoutIsPerFrame() async throws {
        try await withDaemon(configure: { $0.frameTimeout = .seconds(3) }) { daemon in
            let socket = try RawSocket(unixPath: daemon.bound.unixSocketPath!)
            // 100 health frames sent in pieces that each end in the middle of a
            // frame, 50 ms apart: every frame completes within ~50 ms (60 times
            // less than the timeout), but some frame is always partly in, for 5 s.
            let frames = try (0..<100).map { index -> [UInt8] in
                let streamID = UInt32(2 * index + 1)
                return RawSocket.frame(streamID: streamID, body: try Self.healthFrame(streamID))
            }
            var pieces = [Array(frames[0].prefix(frames[0].count / 2))]
            for (index, frame) in frames.enumerated() {
                var piece = Array(frame.dropFirst(frame.count / 2))
                if index + 1 < frames.count { piece += frames[index + 1].prefix(frames[index + 1].count / 2) }
                pieces.append(piece)
            }
            try await socket.send(pieces: pieces, pausing: 0.05)
            var answered: Set<UInt32> = []
            for _ in frames.indices {
                let (streamID, response) = try await socket.receiveResponse()
                #expect(response.status.code == 0)
                answered.insert(streamID)
            }
            let asked = Set(frames.indices.map { UInt32(2 * $0 + 1) })
            #expect(answered == asked)
        }
    }

    @Test("a client that sends calls without taking its answers: once its answers back up, the server starts no more, then answers every one")
    func backPressure() async throws {
        try await withDaemon(configure: { $0.maximumQueuedResponseBytes = 64 * 1024 }) { daemon in
            let client = try await daemon.client()
            let longName = String(repeating: "n", count: 190)
            for index in 0..<50 { _ = try await client.organizations.createOrganization(LifecycleTests.createRequest("\(longName) \(index)")) }
            await client.close()
            // Lists of those 50 organisations (about 12.5 KB to answer each), each
            // padded with a 15 KB unknown field (which protobuf skips).
            var list = Orgd_V1_ListOrganizationsRequest()
            list.pageSize = 100
            var payload: [UInt8] = try list.serializedBytes()
            payload += [15 << 3 | 2, 0x98, 0x75] + [UInt8](repeating: 0x70, count: 15_000) // field 15, 15,000 bytes
            var request = Ttrpc_Request()
            request.service = "orgd.v1.OrganizationService"
            request.method = "ListOrganizations"
            request.payload = Data(payload)
            let body: [UInt8] = try request.serializedBytes()
            func frames(_ streams: Range<Int>) -> [UInt8] {
                streams.flatMap { RawSocket.frame(streamID: UInt32(2 * $0 + 1), body: body) }
            }
            let method = "orgd.v1.OrganizationService/ListOrganizations"
            /// The answered count once it has held for half a second.
            func settled() async throws -> Int {
                var (count, steady) = (daemon.answeredCalls(method), 0)
                for _ in 0..<300 where steady < 5 {
                    try await Task.sleep(for: .milliseconds(100))
                    let now = daemon.answeredCalls(method)
                    (count, steady) = (now, now == count ? steady + 1 : 0)
                }
                return count
            }
            let socket = try RawSocket(unixPath: daemon.bound.unixSocketPath!)
            // 40 calls, not read: their answers (500 KB) are more than the
            // socket's buffer and the 64 KiB allowed to queue.
            try await socket.send(frames(0..<40))
            let before = try await settled()
            #expect(before > 0)
            // 160 more (2.4 MB): none may start, and the sender has to wait.
            let sent = NIOLockedValueBox(false)
            let sending = Task {
                try await socket.send(frames(40..<200))
                sent.withLockedValue { $0 = true }
            }
            let after = try await settled()
            #expect(after == before, "no call started while the answers were backed up (\(before) answered, then \(after))")
            #expect(!sent.withLockedValue { $0 }, "the server stopped reading, so the sender waits")
            // Now the client reads: every call is answered, in the end.
            let codes = try await socket.receiveResponseCodes(200)
            try await sending.value
            #expect(codes.count == 200 && codes.allSatisfy { $0 == 0 })
            #expect(daemon.answeredCalls(method) == 200)
        }
    }

    @Test("an idle connection is closed; one with a call running is not")
    func idle() async throws {
        try await withDaemon(configure: { $0.idleTimeout = .seconds(1) }) { daemon in
            let quiet = try RawSocket(unixPath: daemon.bound.unixSocketPath!)
            #expect(try await quiet.closedByServer(within: 10))
            // A call sent on connecting and kept running (the writer is held)
            // for well past the idle timeout is answered, not cut off.
            let holder = await LifecycleTests.holdWriter(daemon.store, seconds: 3.0)
            let busy = try RawSocket(unixPath: daemon.bound.unixSocketPath!)
            try await busy.sendRequest(streamID: 1, service: "orgd.v1.OrganizationService", method: "CreateOrganization",
                                       payload: try LifecycleTests.createRequest("Slow but alive").serializedBytes())
            let (_, response) = try await busy.receiveResponse()
            #expect(response.status.code == 0)
            await holder.value
        }
    }
}
