import Foundation
import MetricsTestKit
import OrgdCore
import OrgdStore
import Testing

/// Group commit, made deterministic: the test holds the writer with a write
/// that waits, queues more writes behind it, and only then lets it go.
@Suite("group commit")
struct GroupCommitTests {
    final class Gate: @unchecked Sendable {
        let entered = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
    }

    static func store(_ metrics: TestMetrics) throws -> (Store, String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("orgd-gc-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return (try Store(path: directory + "/orgd.sqlite", metrics: metrics), directory)
    }

    /// Starts a write that blocks the writer until `gate.release` is
    /// signalled, and returns once it holds the writer. The waiting happens
    /// on a thread of its own: blocking one of Swift's few cooperative
    /// threads here could starve the very task that signals it.
    static func hold(_ store: Store, _ gate: Gate) async -> Task<Void, Error> {
        let task = Task {
            try await store.write { _ in
                gate.entered.signal()
                gate.release.wait()
            }
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread { gate.entered.wait(); continuation.resume() }.start()
        }
        return task
    }

    static func waitUntilQueued(_ store: Store, _ count: Int) async throws {
        for _ in 0..<1000 where store.queuedWrites < count { try await Task.sleep(for: .milliseconds(10)) }
        #expect(store.queuedWrites == count)
    }

    static func organization(_ name: String, identifier: String? = nil) -> NewOrganization {
        NewOrganization(name: name, kind: .department, identifier: identifier.map { ExternalIdentifier(system: "s", value: $0) })
    }

    @Test("writes that arrive during a commit share the next transaction: one batch, one commit")
    func batching() async throws {
        let metrics = TestMetrics()
        let (store, directory) = try Self.store(metrics)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let gate = Gate()
        let holder = await Self.hold(store, gate)
        let writes = (0..<100).map { index in
            Task { try await store.write { tx in try tx.createOrganization(Self.organization("Batched \(index)")).id } }
        }
        try await Self.waitUntilQueued(store, 100)
        gate.release.signal()
        try await holder.value
        var ids: [String] = []
        for write in writes { ids.append(try await write.value) }
        #expect(Set(ids).count == 100)
        let sizes = try metrics.expectRecorder("orgd_commit_batch_size").values
        #expect(sizes == [1, 100], "the held write alone, then all hundred together")
        #expect(try metrics.expectTimer("orgd_commit_duration_seconds").values.count == 2)
        let stored = try await store.read { tx in try tx.listOrganizations(.init(), after: nil, limit: 1000).items.count }
        #expect(stored == 100)
    }

    @Test("a failing write rolls back alone and gets its own error; the others in its batch commit")
    func failureIsolation() async throws {
        let metrics = TestMetrics()
        let (store, directory) = try Self.store(metrics)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        _ = try await store.write { tx in try tx.createOrganization(Self.organization("Holder of X", identifier: "X")) }
        let gate = Gate()
        let holder = await Self.hold(store, gate)
        let first = Task { try await store.write { tx in try tx.createOrganization(Self.organization("First")).name } }
        try await Self.waitUntilQueued(store, 1)
        let clash = Task { try await store.write { tx in try tx.createOrganization(Self.organization("Clash", identifier: "X")).name } }
        try await Self.waitUntilQueued(store, 2)
        // Writes, then fails: its own change must be undone, no one else's.
        let halfDone = Task {
            try await store.write { tx -> String in
                _ = try tx.createOrganization(Self.organization("Half done"))
                throw RPCError(.aborted, "changed my mind")
            }
        }
        try await Self.waitUntilQueued(store, 3)
        let last = Task { try await store.write { tx in try tx.createOrganization(Self.organization("Last")).name } }
        try await Self.waitUntilQueued(store, 4)
        gate.release.signal()
        try await holder.value

        #expect(try await first.value == "First")
        #expect(try await last.value == "Last")
        await #expect(throws: RPCError.self) { _ = try await clash.value }
        do {
            _ = try await halfDone.value
            Issue.record("the failing write succeeded")
        } catch let error as RPCError {
            #expect(error.code == .aborted)
        }
        #expect(try metrics.expectRecorder("orgd_commit_batch_size").values.suffix(2) == [1, 4])
        let names = try await store.read { tx in try tx.listOrganizations(.init(), after: nil, limit: 100).items.map(\.name) }
        #expect(names == ["Holder of X", "First", "Last"])
    }
}
