import CoreMetrics
import Foundation
import GRDB
import NIOConcurrencyHelpers

/// Runs writes in batches: writes that arrive while a commit is under way
/// join the next transaction, each in its own savepoint, so one failing write
/// rolls back alone and gets its own error. Every caller is answered only
/// after the transaction holding its write has committed — with
/// `synchronous=FULL`, after the fsync — so no one hears OK before their write
/// is durable, and a batch costs one fsync however many writes it holds.
///
/// The batches run on GRDB's single writer queue, never on an event loop.
final class GroupCommitWriter: Sendable {
    typealias Body = @Sendable (StoreTransaction) throws -> any Sendable

    private struct Job: Sendable {
        var body: Body
        var continuation: CheckedContinuation<Result<any Sendable, Error>, Never>
    }

    private struct State: Sendable {
        var queue: [Job] = []
        var draining = false
    }

    /// The most writes in one transaction; more wait for the next.
    static let maximumBatch = 512

    private let pool: DatabasePool
    private let clock: @Sendable () -> Date
    // A pthread mutex rather than Synchronization.Mutex: ThreadSanitizer can
    // see its happens-before edges.
    private let state = NIOLockedValueBox(State())
    private let batchSize: Recorder
    private let commitDuration: CoreMetrics.Timer

    init(pool: DatabasePool, clock: @escaping @Sendable () -> Date, metrics: any MetricsFactory) {
        self.pool = pool
        self.clock = clock
        batchSize = Recorder(label: "orgd_commit_batch_size", dimensions: [], aggregate: true, factory: metrics)
        commitDuration = CoreMetrics.Timer(label: "orgd_commit_duration_seconds", dimensions: [], factory: metrics)
    }

    /// Writes waiting for the next batch.
    var queued: Int { state.withLockedValue { $0.queue.count } }

    /// Runs `body` in the next batch and returns its result once that batch
    /// has committed. Throws `body`'s error, or the commit's.
    func submit(_ body: @escaping Body) async throws -> any Sendable {
        let result: Result<any Sendable, Error> = await withCheckedContinuation { continuation in
            let start = state.withLockedValue { state in
                state.queue.append(Job(body: body, continuation: continuation))
                defer { state.draining = true }
                return !state.draining
            }
            if start {
                pool.asyncWriteWithoutTransaction { db in self.drain(db) }
            }
        }
        // The other half of the hand-off edge in `drain` (see there).
        state.withLockedValue { _ in }
        return try result.get()
    }

    /// Commits batches until the queue is empty (on the writer queue).
    private func drain(_ db: Database) {
        while let jobs = nextBatch() {
            let started = ContinuousClock.now
            var outcomes: [Result<any Sendable, Error>] = []
            outcomes.reserveCapacity(jobs.count)
            do {
                try db.inTransaction(.immediate) {
                    for job in jobs {
                        do {
                            var value: (any Sendable)?
                            let transaction = StoreTransaction(db: db, now: clock())
                            try db.inSavepoint {
                                value = try job.body(transaction)
                                return .commit
                            }
                            outcomes.append(.success(value!))
                        } catch {
                            outcomes.append(.failure(error))
                        }
                    }
                    return .commit
                }
            } catch {
                // The commit itself failed: nothing in the batch is durable.
                outcomes = jobs.map { _ in .failure(error) }
            }
            commitDuration.recordInterval(since: started)
            batchSize.record(jobs.count)
            // A happens-before edge that ThreadSanitizer can see: the values
            // were built on this thread and are read by the resumed tasks,
            // which take the same lock first. The continuation already orders
            // the two, but through Swift's concurrency runtime and its
            // private dispatch entry point, which TSan does not see; without
            // this it reports every result as a race. It costs one
            // uncontended lock per write.
            state.withLockedValue { _ in }
            for (job, outcome) in zip(jobs, outcomes) {
                job.continuation.resume(returning: outcome)
            }
        }
    }

    /// The next batch, or nil (and draining stops) when nothing is queued.
    private func nextBatch() -> [Job]? {
        state.withLockedValue { state in
            guard !state.queue.isEmpty else {
                state.draining = false
                return nil
            }
            let count = min(state.queue.count, Self.maximumBatch)
            let batch = Array(state.queue.prefix(count))
            state.queue.removeFirst(count)
            return batch
        }
    }
}

extension CoreMetrics.Timer {
    func recordInterval(since start: ContinuousClock.Instant) {
        let (seconds, attoseconds) = (ContinuousClock.now - start).components
        recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
