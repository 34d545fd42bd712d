import Foundation
import OrgdClient
import OrgdCore
import OrgdProto
import OrgdStore
import Testing
import Dispatch

/// Calls that are really in flight: the test holds SQLite's single writer, so
/// a create waits for it, exactly as it would behind a slow commit.
@Suite("deadlines and graceful shutdown")
struct LifecycleTests {
    /// Holds the store's writer until `release()` is called; returns once it
    /// is held. For tests that must not depend on how fast the machine is.
    static func holdWriterUntilReleased(_ store: Store) async -> (release: @Sendable () -> Void, done: Task<Void, Never>) {
        let gate = DispatchSemaphore(value: 0)
        let (held, signal) = AsyncStream<Void>.makeStream()
        let task = Task {
            _ = try? await store.write { _ in
                signal.yield()
                gate.wait()
            }
        }
        for await _ in held { break }
        return ({ gate.signal() }, task)
    }

    /// Holds the store's writer for `seconds`, returning once it is held.
    static func holdWriter(_ store: Store, seconds: Double) async -> Task<Void, Never> {
        let (held, signal) = AsyncStream<Void>.makeStream()
        let task = Task {
            _ = try? await store.write { _ in
                signal.yield()
                Thread.sleep(forTimeInterval: seconds)
            }
        }
        for await _ in held { break }
        return task
    }

    static func createRequest(_ name: String) -> Orgd_V1_CreateOrganizationRequest {
        var request = Orgd_V1_CreateOrganizationRequest()
        request.name = name
        request.type = .department
        return request
    }

    @Test("a call still running when its deadline passes is answered DEADLINE_EXCEEDED, and the connection goes on", .sqliteOnly("holds SQLite's write lock to keep a call running"))
    func deadlineWhileRunning() async throws {
        try await withDaemon { daemon in
            let client = try await daemon.client()
            let (release, holder) = await Self.holdWriterUntilReleased(daemon.store)
            // A raw client with no timer of its own: the only answer that can
            // come is the server's, however slow the machine (e.g. under TSan).
            let socket = try RawSocket(unixPath: daemon.bound.unixSocketPath!)
            var request = Ttrpc_Request()
            request.service = "orgd.v1.OrganizationService"
            request.method = "CreateOrganization"
            request.payload = try Self.createRequest("Too slow").serializedData()
            request.timeoutNano = 100_000_000
            try await socket.sendFrame(streamID: 1, body: try request.serializedBytes())
            let (streamID, response) = try await socket.receiveResponse()
            #expect(streamID == 1 && StatusCode(wireValue: response.status.code) == .deadlineExceeded)
            #expect(response.status.message.contains("timeout_nano"), "\(response.status.message)")
            // The writer is released only now: the answer above came while the
            // call was still waiting for it, not because it finished late.
            #expect(try await client.health.check().status == .serving)
            release()
            await holder.value
            await client.close()
        }
    }

    @Test("shutdown lets in-flight calls finish, answers them, and refuses new connections", .sqliteOnly("holds SQLite's write lock to keep calls in flight"))
    func drainFinishesInFlightCalls() async throws {
        let daemon = try await TestDaemon.start()
        let client = try await daemon.client()
        let (release, holder) = await Self.holdWriterUntilReleased(daemon.store)
        let inFlight = Task {
            try await withThrowingTaskGroup(of: Orgd_V1_Organization.self) { group in
                for index in 0..<10 {
                    group.addTask { try await client.organizations.createOrganization(Self.createRequest("In flight \(index)")) }
                }
                return try await group.reduce(into: [Orgd_V1_Organization]()) { $0.append($1) }
            }
        }
        // All ten are in the server, queued behind the held writer, before shutdown starts
        // (waiting on the queue, not a clock, so a slow machine cannot reorder them).
        for _ in 0..<3000 where daemon.store.queuedWrites < 10 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(daemon.store.queuedWrites == 10)
        let shutdown = Task { await daemon.server.shutdown() }
        // Listeners are closed first: a new connection is soon refused.
        var refused = false
        for _ in 0..<300 where !refused {
            do {
                let late = try await OrgdClient.connect(to: daemon.unix)
                await late.close()
                try await Task.sleep(for: .milliseconds(10))
            } catch is RPCError { refused = true }
        }
        #expect(refused, "new connections are refused once shutdown starts")
        release()
        await holder.value
        let finished = try await inFlight.value
        #expect(finished.count == 10)
        await shutdown.value
        let stored = try await daemon.store.read { tx in try tx.listOrganizations(.init(), after: nil, limit: 100) }
        #expect(stored.items.count == 10)
        await client.close()
        await daemon.stop()
    }
}
