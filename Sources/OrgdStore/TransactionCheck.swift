import NIOConcurrencyHelpers

/// A check that runs first inside every transaction a call opens: the part of
/// an access rule that depends on the data (is the caller a manager of the
/// organisation this request is about?). Checked in the same transaction as
/// the change it guards — on the writer, for a write — so nothing can change
/// between the decision and the write, and the call costs no extra
/// transaction. `Store.read` and `Store.write` run it; the method table sets it.
public final class TransactionCheck: Sendable {
    @TaskLocal public static var current: TransactionCheck?

    private let body: @Sendable (StoreTransaction) throws -> Void
    private let passed = NIOLockedValueBox(false)

    public init(_ body: @escaping @Sendable (StoreTransaction) throws -> Void) {
        self.body = body
    }

    /// Whether the check has passed in at least one transaction.
    public var hasPassed: Bool { passed.withLockedValue { $0 } }

    func run(_ tx: StoreTransaction) throws {
        try body(tx)
        passed.withLockedValue { $0 = true }
    }
}
