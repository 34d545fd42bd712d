import CoreMetrics
import Foundation
import Logging
import NIOConcurrencyHelpers

/// The relation the access check decides on, and the tokens that
/// authenticate its callers, held in memory so CheckAccess is answered
/// without the database (and without leaving the event loop that read it).
///
/// Derived from the store, never a cache that can be wrong:
/// - it is built from one snapshot at start; until then (and whenever it
///   could not follow the store) `isServing` is false and calls are answered
///   from the store as before;
/// - every write this daemon commits is applied before the write is
///   acknowledged (`Store.write` waits for it), so no read that starts
///   after an acknowledgement sees the state before it;
/// - writes of other daemons over the same PostgreSQL database arrive by
///   the change feed, polled every `pollInterval`; their delay is exported
///   (`orgd_access_index_lag_seconds`), and a call that sends a consistency
///   token newer than the index is answered from the store.
public final class AccessIndex: Sendable {
    private let state = NIOLockedValueBox(AccessIndexState())
    private let follow = NIOLockedValueBox(Follow())
    private let logger: Logger
    private let lag: CoreMetrics.Timer
    private let revisionGauge: Gauge
    private let consentsGauge: Gauge
    private let buildSeconds: Gauge
    private let answers: Counter

    private struct Follow {
        /// Built, and following the store.
        var serving = false
        /// A catch-up is running (at most one at a time).
        var running = false
        /// Writes waiting until the index has reached their revision.
        var waiters: [(revision: Int64, resume: CheckedContinuation<Void, Never>)] = []
        /// The newest revision a write committed while the index was not
        /// serving (so the write did not wait): serving starts only once
        /// the index has reached it.
        var skipped: Int64 = 0
        /// The snapshot is loaded and the build is catching up: writes wait
        /// (queued) instead of adding to `skipped`, so the build ends.
        var queueing = false
        var stopped = false
    }

    init(metrics: any MetricsFactory, logger: Logger) {
        self.logger = logger
        lag = CoreMetrics.Timer(label: "orgd_access_index_lag_seconds", factory: metrics)
        revisionGauge = Gauge(label: "orgd_access_index_revision", factory: metrics)
        consentsGauge = Gauge(label: "orgd_access_index_consents", factory: metrics)
        buildSeconds = Gauge(label: "orgd_access_index_build_seconds", factory: metrics)
        answers = Counter(label: "orgd_access_index_answers_total", factory: metrics)
    }

    /// Whether calls may be answered from the index now.
    public var isServing: Bool { follow.withLockedValue { $0.serving } }

    /// The revision the index reflects.
    public var revision: Int64 { state.withLockedValue { $0.revision } }

    /// Runs `body` on the index as of one revision, if it is serving and
    /// has reached `atLeast`; nil otherwise (the caller asks the store).
    /// Every answer `body` gets comes from that one revision, at the time
    /// `now`. Holds the index's lock for the duration: `body` must be short
    /// and must not block.
    public func withView<T>(atLeast revision: Int64 = 0, now: Date, _ body: (AccessIndexView) throws -> T) rethrows -> T? {
        guard isServing else { return nil }
        let answer = try state.withLockedValue { state -> T? in
            guard state.revision >= revision else { return nil }
            // Over PostgreSQL: an index that has not heard from the
            // database for too long answers nothing rather than old news.
            if let bound = state.stalenessBound, ContinuousClock.now - state.followed > bound { return nil }
            return try body(AccessIndexView(state: state, nowMicros: now.storedMicros))
        }
        if answer != nil { answers.increment() }
        return answer
    }

    var isStopped: Bool { follow.withLockedValue { $0.stopped } }

    // MARK: Building and following

    /// Builds the index from one snapshot of `store`, catches up with the
    /// writes committed meanwhile, then serves. Calls are answered from the
    /// store until this returns.
    func build(_ store: Store) async throws {
        let started = ContinuousClock.now
        let built = try await store.read { tx in try tx.accessIndexState() }
        state.withLockedValue { state in
            let bound = state.stalenessBound
            state = built
            state.stalenessBound = bound
            state.followed = .now
        }
        // Writes acknowledged while the snapshot was read did not wait for
        // the index (`skipped`); from here on they wait in the queue, so
        // catching up with them ends.
        follow.withLockedValue { $0.queueing = true }
        do {
            while try await applyPending(store) < follow.withLockedValue({ $0.skipped }) {}
        } catch {
            release(failed: true)
            throw error
        }
        let start = follow.withLockedValue { follow -> Bool in
            follow.queueing = false
            guard !follow.stopped else { return false }
            follow.serving = true
            guard !follow.waiters.isEmpty, !follow.running else { return false }
            follow.running = true
            return true
        }
        if start { Task.detached { await self.catchUp(store) } }
        if isStopped { release(failed: true) }
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        buildSeconds.record(seconds)
        logger.info(
            "access index built",
            metadata: [
                "index.revision": "\(built.revision)", "index.consents": "\(built.consentCount)",
                "index.patients": "\(built.patients.count)", "index.seconds": "\(String(format: "%.3f", seconds))",
            ])
    }

    /// Lets every waiting write go; when the index failed, it stops serving
    /// and notes their revisions for the next build.
    private func release(failed: Bool) {
        let waiting = follow.withLockedValue { follow -> [CheckedContinuation<Void, Never>] in
            if failed {
                follow.serving = false
                follow.queueing = false
                for waiter in follow.waiters { follow.skipped = max(follow.skipped, waiter.revision) }
            }
            defer { follow.waiters = [] }
            return follow.waiters.map(\.resume)
        }
        for continuation in waiting { continuation.resume() }
    }

    /// Returns once the index reflects `revision` (a write this daemon just
    /// committed; 0 to look for other daemons' writes), catching up from the
    /// change feed. When the index is not serving, returns at once and notes
    /// the revision (serving waits for it). When the index cannot follow
    /// (the store failed to answer), it stops serving, so nothing stale is
    /// ever answered, and is built again.
    func caughtUp(to revision: Int64, _ store: Store) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let start: Bool = follow.withLockedValue { follow in
                guard follow.serving || follow.queueing, !follow.stopped else {
                    follow.skipped = max(follow.skipped, revision)
                    continuation.resume()
                    return false
                }
                if revision > 0 && state.withLockedValue({ $0.revision }) >= revision {
                    continuation.resume()
                    return false
                }
                follow.waiters.append((revision, continuation))
                // While building, the build catches up and starts the loop.
                guard follow.serving, !follow.running else { return false }
                follow.running = true
                return true
            }
            // Detached: the caller's task-locals (its access check, its
            // audit record) must not run in the index's reads.
            if start { Task.detached { await self.catchUp(store) } }
        }
    }

    /// Reads the entities changed since the index's revision and applies them.
    @discardableResult
    private func applyPending(_ store: Store) async throws -> Int64 {
        let from = state.withLockedValue { $0.revision }
        let (updates, revision, commitTimes) = try await store.read { tx in try tx.accessIndexUpdates(after: from) }
        let now = Date()
        let (count, reached) = state.withLockedValue { state -> (Int, Int64) in
            for update in updates { state.apply(update) }
            state.revision = max(state.revision, revision)
            state.followed = .now
            return (state.consentCount, state.revision)
        }
        revisionGauge.record(revision)
        consentsGauge.record(count)
        for time in commitTimes {
            lag.recordNanoseconds(Int64(max(0, now.timeIntervalSince(time)) * 1e9))
        }
        return reached
    }

    /// Applies the change feed until no waiter wants a newer revision.
    private func catchUp(_ store: Store) async {
        while true {
            var failed = false
            do {
                try await applyPending(store)
            } catch {
                failed = true
                logger.error(
                    "the access index could not follow the store; answering from the store until it is built again",
                    metadata: ["index.error": "\(error)"])
            }
            let (ready, again) = follow.withLockedValue { follow -> ([CheckedContinuation<Void, Never>], Bool) in
                let reached = state.withLockedValue { $0.revision }
                if failed { follow.serving = false }
                var ready: [CheckedContinuation<Void, Never>] = []
                follow.waiters.removeAll { waiter in
                    guard failed || waiter.revision <= reached else { return false }
                    // Acknowledged without the index: a rebuild must reach it.
                    if failed { follow.skipped = max(follow.skipped, waiter.revision) }
                    ready.append(waiter.resume)
                    return true
                }
                let again = !failed && !follow.waiters.isEmpty
                if !again { follow.running = false }
                return (ready, again)
            }
            for continuation in ready { continuation.resume() }
            if failed {
                rebuild(store)
                return
            }
            if !again { return }
        }
    }

    /// Builds again after a failure, retrying every second until it works.
    private func rebuild(_ store: Store) {
        Task.detached { [self] in
            while !isStopped {
                do {
                    try await build(store)
                    return
                } catch {
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
    }

    /// Follows other daemons' writes: looks at the change feed every
    /// `interval` (SQLite has no other writer, so it does not poll).
    /// An index that has not caught up for 100 intervals (at least a
    /// second) answers nothing: a stalled database read never turns into
    /// answers from an ever older state.
    func poll(_ store: Store, every interval: Duration) {
        let bound = max(interval * 100, .seconds(1))
        state.withLockedValue { $0.stalenessBound = bound }
        Task.detached { [self] in
            while !isStopped {
                try? await Task.sleep(for: interval)
                guard isServing else { continue }
                await caughtUp(to: 0, store)
            }
        }
    }

    /// Stops following (at shutdown).
    func stop() {
        follow.withLockedValue {
            $0.stopped = true
            $0.serving = false
        }
    }
}

/// The access index at one revision, for the questions it answers.
public struct AccessIndexView {
    let state: AccessIndexState
    let nowMicros: Int64

    /// `StoreTransaction.checkAccess`'s decision, from memory.
    public func checkAccess(agentID: String, patientID: String, scopeID: String) -> AccessDecision {
        guard let scope = EntityID(scopeID) else { return AccessDecision(reason: .unknownScope, message: "no such scope") }
        return state.checkAccess(agentID: agentID, patientID: patientID, scope: scope, nowMicros: nowMicros)
    }

    public func scope(id: String) -> ScopeRecord? { state.scope(id: id) }

    public func scope(codingSystem: String, codingCode: String) -> ScopeRecord? {
        state.scope(codingSystem: codingSystem, codingCode: codingCode)
    }

    /// `StoreTransaction.principal(forSecret:)`'s answer, from memory.
    public func principal(forSecret secret: String) -> TokenPrincipal? {
        state.principal(forSecretHash: SecretHash(secret: secret), nowMicros: nowMicros)
    }
}
