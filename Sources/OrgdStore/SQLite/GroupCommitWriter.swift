import CoreMetrics
import Foundation
import GRDB
import GRDBSQLite
import Logging
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
        /// A secret was erased and the WAL still holds old page images.
        var scrubPending = false
        /// A scrub is scheduled on the writer queue.
        var scrubScheduled = false
        var scrubWaiters: [CheckedContinuation<Void, Never>] = []
        /// Failed scrub attempts in a row (readers kept the WAL busy).
        var scrubFailures = 0
        /// The store is closing: nothing more may reach the database.
        var closed = false
    }

    /// The most writes in one transaction; more wait for the next.
    static let maximumBatch = 512

    private let pool: DatabasePool
    private let clock: @Sendable () -> Date
    private let files: DatabaseFiles
    private let logger: Logger
    // A pthread mutex rather than Synchronization.Mutex: ThreadSanitizer can
    // see its happens-before edges.
    private let state = NIOLockedValueBox(State())
    private let batchSize: Recorder
    private let commitDuration: CoreMetrics.Timer

    /// Erasures within this long share one scrub (checkpoint).
    static let scrubDelay: TimeInterval = 0.05

    init(pool: DatabasePool, clock: @escaping @Sendable () -> Date, files: DatabaseFiles, logger: Logger, metrics: any MetricsFactory) {
        self.pool = pool
        self.clock = clock
        self.files = files
        self.logger = logger
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
            let effects = TransactionEffects()
            do {
                // A database file deleted or replaced under us would take
                // every later commit with it at the next start: refuse
                // before writing, and again after, so that no write is
                // acknowledged once the file is gone.
                try checkFiles()
                try db.inTransaction(.immediate) {
                    for job in jobs {
                        do {
                            var value: (any Sendable)?
                            let transaction = StoreTransaction(sql: SQLiteExecutor(db: db), now: clock(), effects: effects)
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
                try checkFiles()
            } catch {
                // The commit itself failed (or the file is gone): nothing in
                // the batch is durable.
                outcomes = jobs.map { _ in .failure(error) }
            }
            commitDuration.recordInterval(since: started)
            batchSize.record(jobs.count)
            // Before anyone hears OK, so that a caller who waits for the
            // scrub after its erase finds it pending.
            if effects.erasedSecret { requestScrub() }
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

    /// Throws UNAVAILABLE when the database files are no longer the ones
    /// opened (logged at critical the first time).
    private func checkFiles() throws {
        guard let problem = files.problem() else { return }
        throw DatabaseFiles.error(problem)
    }

    // MARK: scrubbing erased secrets out of the WAL

    /// Whether an erased secret may still be in the WAL file.
    var scrubPending: Bool { state.withLockedValue { $0.scrubPending } }

    /// Returns once no erased secret is left in the WAL file (at once when
    /// none is pending).
    func waitForScrub() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = state.withLockedValue { state in
                if !state.scrubPending { return true }
                state.scrubWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    /// Schedules one scrub for all erasures of the next `scrubDelay`.
    private func requestScrub() {
        let schedule = state.withLockedValue { state in
            state.scrubPending = true
            defer { state.scrubScheduled = true }
            return !state.scrubScheduled
        }
        if schedule { scheduleScrub(after: Self.scrubDelay) }
    }

    private func scheduleScrub(after delay: TimeInterval) {
        DispatchQueue.global().asyncAfter(deadline: .now() + delay) { [self] in
            // Enqueued under the lock that `close()` takes before the pool
            // closes, so a scrub is either queued ahead of the close on the
            // writer's serial queue or never queued (a write on a closed
            // connection crashes inside SQLite).
            let waiters: [CheckedContinuation<Void, Never>] = state.withLockedValue { state in
                guard state.closed else {
                    pool.asyncWriteWithoutTransaction { db in self.scrub(db) }
                    return []
                }
                state.scrubScheduled = false
                defer { state.scrubWaiters = [] }
                return state.scrubWaiters
            }
            for waiter in waiters { waiter.resume() }
        }
    }

    /// Called before the pool closes: no scrub is queued after this.
    func close() {
        state.withLockedValue { $0.closed = true }
    }

    /// A TRUNCATE checkpoint: every page goes to the database file (where
    /// secure_delete has zeroed the erased values) and the WAL is cut to
    /// zero bytes, so the old page images that held the secret are gone.
    /// Readers on an older snapshot block it: then it is tried again.
    private func scrub(_ db: Database) {
        // On the writer queue, like every commit: no erasure can slip in
        // between the checkpoint and clearing the flag.
        do {
            // Without waiting: a TRUNCATE checkpoint waits for readers on an
            // older snapshot, and the writer (every write) would wait with
            // it, up to the busy timeout. Busy now means: try again soon.
            if let connection = db.sqliteConnection { sqlite3_busy_timeout(connection, 0) }
            defer { if let connection = db.sqliteConnection { sqlite3_busy_timeout(connection, SQLiteBackend.busyTimeoutMilliseconds) } }
            try db.checkpoint(.truncate)
            let waiters = state.withLockedValue { state in
                state.scrubFailures = 0
                state.scrubPending = false
                state.scrubScheduled = false
                defer { state.scrubWaiters = [] }
                return state.scrubWaiters
            }
            for waiter in waiters { waiter.resume() }
        } catch {
            let failures = state.withLockedValue { state in
                state.scrubFailures += 1
                return state.scrubFailures
            }
            // Closed (SQLITE_MISUSE) or hopeless: stop trying, say so, and
            // let waiters go.
            if (error as? DatabaseError)?.resultCode == .SQLITE_MISUSE || failures >= 600 {
                logger.error("erased invitation tokens may remain in the write-ahead log until the next checkpoint", metadata: ["store.error": "\(error)"])
                let waiters = state.withLockedValue { state in
                    state.scrubScheduled = false
                    defer { state.scrubWaiters = [] }
                    return state.scrubWaiters
                }
                for waiter in waiters { waiter.resume() }
                return
            }
            if failures == 10 {
                logger.warning("erased invitation tokens are still in the write-ahead log: checkpoints keep failing", metadata: ["store.error": "\(error)"])
            }
            scheduleScrub(after: min(1, Self.scrubDelay * Double(failures)))
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

/// What the writer must do once a batch has committed; set by the
/// transactions of the batch (all on the writer's thread).
final class TransactionEffects: @unchecked Sendable {
    var erasedSecret = false
}

extension CoreMetrics.Timer {
    func recordInterval(since start: ContinuousClock.Instant) {
        let (seconds, attoseconds) = (ContinuousClock.now - start).components
        recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
