import NIOConcurrencyHelpers
import PostgresNIO

/// The named prepared statements of one PostgreSQL connection, by their
/// SQL text (placeholders numbered and typed, see
/// `PostgresExecutor.numbered(_:types:)`).
///
/// A statement sent unnamed is parsed and planned by PostgreSQL every time;
/// for the store's access query that is 0.6–0.9 ms of planning against
/// about 0.1 ms of execution. Prepared once per connection, it is only bound
/// and executed. Prepared statements outlive transactions (a rollback keeps
/// them), and PostgreSQL re-plans them itself after a schema change.
///
/// Only the connection's lessee touches it (one transaction at a time, on
/// one pool thread), so it needs no lock of its own.
final class PreparedStatements: @unchecked Sendable {
    /// At most this many statements per connection; past it, statements go
    /// unnamed. The store's distinct statements are fewer, but a list of
    /// `?` whose length follows the request makes a text of its own.
    static let capacity = 256

    private var statements: [String: PreparedQuery] = [:]
    fileprivate var lastUse = 0

    subscript(text: String) -> PreparedQuery? { statements[text] }

    var isFull: Bool { statements.count >= Self.capacity }

    func add(_ statement: PreparedQuery, for text: String) { statements[text] = statement }

    /// Forgets every statement, after PostgreSQL said one does not exist
    /// (something ran `DISCARD ALL` or `DEALLOCATE` on the connection, or a
    /// pooler in front of PostgreSQL handed out another session).
    func removeAll() { statements.removeAll() }
}

/// The prepared statements of every connection of one backend's pool, by
/// connection id (postgres-nio numbers a pool's connections, never reusing
/// an id). The entries of connections that closed are dropped, least
/// recently used first, once there are more than the pool could hold.
final class PreparedStatementCache: Sendable {
    private struct State {
        var byConnection: [PostgresConnection.ID: PreparedStatements] = [:]
        var uses = 0
        var disabled = false
    }
    private let state = NIOLockedValueBox(State())
    private let limit: Int

    init(poolSize: Int) { limit = 2 * poolSize + 4 }

    /// The connection's statements; nil once prepared statements are off.
    func statements(for connection: PostgresConnection.ID) -> PreparedStatements? {
        state.withLockedValue { state in
            guard !state.disabled else { return nil }
            state.uses += 1
            let statements = state.byConnection[connection] ?? PreparedStatements()
            statements.lastUse = state.uses
            state.byConnection[connection] = statements
            if state.byConnection.count > limit,
               let stalest = state.byConnection.min(by: { $0.value.lastUse < $1.value.lastUse })?.key {
                state.byConnection[stalest] = nil
            }
            return statements
        }
    }

    /// Turns prepared statements off for the rest of the process: a session
    /// lost them (SQLSTATE 26000), which is what a pooler in transaction
    /// mode does to every session. True the first time.
    func disable() -> Bool {
        state.withLockedValue { state in
            defer { state.disabled = true; state.byConnection.removeAll() }
            return !state.disabled
        }
    }
}
