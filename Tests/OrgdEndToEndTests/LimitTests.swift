import Foundation
import NIOConcurrencyHelpers
import NIOCore
import OrgdClient
import OrgdCore
import OrgdProto
import OrgdWire
import Testing

/// Each limit, set small, is enforced — and the daemon goes on serving
/// everyone else.
@Suite("limits", .timeLimit(.minutes(1)))
struct LimitTests {
    static func healthFrame(_ streamID: UInt32) throws -> [UInt8] {
        var request = Ttrpc_Request()
        request.service = "grpc.health.v1.Health"
        request.method = "Check"
        return try request.serializedBytes()
    }

    @Test("past the connection limit new connections are closed; existing ones are served")
    func connections() async throws {
        try await withDaemon(configure: { $0.maximumConnections = 3 }) { daemon in
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
                var buffer = ByteBuffer()
                buffer.writeFrame(streamID: streamID, type: .request, payload: ByteBuffer(bytes: Array(try request.serializedData())))
                frames += buffer.readableBytesView
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
                var buffer = ByteBuffer()
                buffer.writeFrame(streamID: streamID, type: .request, payload: ByteBuffer(bytes: try Self.healthFrame(streamID)))
                return Array(buffer.readableBytesView)
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

    @Test("a client that sends calls without taking its answers: the server stops starting them at a bound, then answers every one")
    func backPressure() async throws {
        try await withDaemon(configure: { $0.maximumQueuedResponseBytes = 64 * 1024 }) { daemon in
            let client = try await daemon.client()
            let longName = String(repeating: "n", count: 190)
            for index in 0..<100 { _ = try await client.organizations.createOrganization(LifecycleTests.createRequest("\(longName) \(index)")) }
            await client.close()
            func created() async throws -> Int {
                try await daemon.store.read { tx in try tx.listOrganizations(.init(), after: nil, limit: 10_000) }.items.count - 100
            }
            // 300 pairs of calls, sent without reading: a list of those 100
            // organisations (about 25 KB to answer) and a create (counted in the
            // store), each padded with 7.5 KB of metadata: 4.5 MB in all, more
            // than the socket's buffers and a read cycle hold, so the sender
            // must wait if the server stops reading.
            var bytes: [UInt8] = []
            var list = Orgd_V1_ListOrganizationsRequest()
            list.pageSize = 100
            var padding = Ttrpc_KeyValue()
            (padding.key, padding.value) = ("x-padding", String(repeating: "p", count: 7500))
            for index in 0..<300 {
                for (offset, method, payload) in [(UInt32(1), "ListOrganizations", try list.serializedData()),
                                                  (3, "CreateOrganization", try LifecycleTests.createRequest("Pressed \(index)").serializedData())] {
                    var request = Ttrpc_Request()
                    request.service = "orgd.v1.OrganizationService"
                    request.method = method
                    request.payload = payload
                    request.metadata = [padding]
                    var buffer = ByteBuffer()
                    buffer.writeFrame(streamID: UInt32(4 * index) + offset, type: .request,
                                      payload: ByteBuffer(bytes: try request.serializedBytes() as [UInt8]))
                    bytes += buffer.readableBytesView
                }
            }
            let socket = try RawSocket(unixPath: daemon.bound.unixSocketPath!)
            let sent = NIOLockedValueBox(false)
            let sending = Task {
                try await socket.send(bytes)
                sent.withLockedValue { $0 = true }
            }
            // Wait until the server stops starting calls (the count holds for half a second).
            var (count, steady) = (try await created(), 0)
            for _ in 0..<100 where steady < 5 {
                try await Task.sleep(for: .milliseconds(100))
                let now = try await created()
                (count, steady) = (now, now == count ? steady + 1 : 0)
            }
            // A few dozen pairs get started; without back-pressure all 300 would be,
            // their answers held in memory, and the sender would be done.
            #expect(count < 150, "the server stopped starting calls at \(count) of 300 creates")
            #expect(!sent.withLockedValue { $0 }, "the server stopped reading, so the sender waits")
            // Now the client reads: every call is answered, in the end, and all were created.
            var failures = 0
            for _ in 0..<600 where try await socket.receiveResponse().response.status.code != 0 { failures += 1 }
            try await sending.value
            #expect(failures == 0)
            #expect(try await created() == 300)
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
