import Logging
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// One budget for the bytes every connection makes the server hold: data of
/// frames that have started and not finished, and answers written that the
/// client has not taken yet. Past the budget the connections holding the most
/// are closed (logged, counted) until the rest fit, so a crowd of clients that
/// each hold a large unfinished frame cannot grow the process without bound,
/// and the clients that hold little are not the ones to pay.
///
/// Each connection's share is an atomic the connection updates on its own
/// event loop; the total is an atomic too, so the usual update costs two
/// atomic adds and no lock. The lock is taken only to open and close
/// accounts, and to choose whom to close when the budget is exceeded.
final class MemoryBudget: Sendable {
    /// One connection's share.
    final class Account: Sendable {
        fileprivate let id: ObjectIdentifier
        fileprivate let held = Atomic<Int>(0)
        fileprivate let closing = Atomic<Bool>(false)
        fileprivate let closed = Atomic<Bool>(false)
        fileprivate var isClosed: Bool { closed.load(ordering: .relaxed) }
        fileprivate let channel: any Channel
        fileprivate let peer: String
        /// Whether shedding may close it (TCP; the operator's Unix socket is
        /// counted but never closed for the budget).
        fileprivate let sheddable: Bool

        fileprivate init(channel: any Channel, peer: String, sheddable: Bool) {
            self.id = ObjectIdentifier(channel)
            self.channel = channel
            self.peer = peer
            self.sheddable = sheddable
        }

        /// What this connection holds now.
        var bytes: Int { held.load(ordering: .relaxed) }
    }

    /// The budget in bytes.
    let limit: Int
    private let total = Atomic<Int>(0)
    private let accounts = NIOLockedValueBox<[ObjectIdentifier: Account]>([:])
    private let metrics: ServerMetrics
    private let logger: Logger

    init(limit: Int, metrics: ServerMetrics, logger: Logger) {
        self.limit = limit
        self.metrics = metrics
        self.logger = logger
    }

    /// What all connections hold now.
    var bytes: Int { total.load(ordering: .relaxed) }

    /// Opens the account of a new connection.
    func open(channel: any Channel, peer: String, sheddable: Bool) -> Account {
        let account = Account(channel: channel, peer: peer, sheddable: sheddable)
        accounts.withLockedValue { $0[account.id] = account }
        return account
    }

    /// Closes an account: what it held is released.
    func close(_ account: Account) {
        accounts.withLockedValue { _ = $0.removeValue(forKey: account.id) }
        account.closed.store(true, ordering: .relaxed)
        let held = account.held.exchange(0, ordering: .relaxed)
        metrics.bufferedBytes(total.subtract(held, ordering: .relaxed).newValue)
    }

    /// Records that `account` holds `delta` more (or, negative, fewer) bytes.
    /// Called on the account's connection's event loop only.
    func change(_ account: Account, by delta: Int) {
        guard delta != 0, !account.isClosed else { return }
        account.held.add(delta, ordering: .relaxed)
        let now = total.add(delta, ordering: .relaxed).newValue
        metrics.bufferedBytes(now)
        if delta > 0 && now > limit { shed() }
    }

    /// Closes the largest holders until what the others hold fits.
    private func shed() {
        let victims: [Account] = accounts.withLockedValue { accounts in
            var excess = total.load(ordering: .relaxed) - limit
            // Those already being closed will give back what they hold.
            for account in accounts.values where account.closing.load(ordering: .relaxed) { excess -= account.bytes }
            guard excess > 0 else { return [] }
            var chosen: [Account] = []
            let candidates = accounts.values.filter { $0.sheddable && !$0.closing.load(ordering: .relaxed) }
            for account in candidates.sorted(by: { $0.bytes > $1.bytes }) {
                guard excess > 0, account.bytes > 0 else { break }
                account.closing.store(true, ordering: .relaxed)
                excess -= account.bytes
                chosen.append(account)
            }
            return chosen
        }
        for account in victims {
            logger.warning("closing a connection: the server's memory budget for unfinished frames and untaken answers is exceeded", metadata: [
                "connection.peer": "\(account.peer)", "connection.buffered_bytes": "\(account.bytes)",
                "limit.buffered_bytes": "\(limit)",
            ])
            metrics.connectionClosed(reason: .memoryBudget)
            account.channel.close(promise: nil)
        }
    }
}
