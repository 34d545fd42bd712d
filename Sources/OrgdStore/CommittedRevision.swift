import NIOConcurrencyHelpers

/// Where a call's writes leave the change-feed revision they committed
/// under: the dispatcher sets one for each call (`$current.withValue`), every
/// `Store.write` inside the call notes its revision once durable, and the
/// answer carries the newest as its consistency token. A write that changed
/// nothing notes the newest revision it saw, which is as fresh as its answer.
public final class CommittedRevision: Sendable {
    @TaskLocal public static var current: CommittedRevision?

    private let newest = NIOLockedValueBox<Int64?>(nil)

    public init() {}

    /// The newest revision noted, nil when the call wrote nothing.
    public var revision: Int64? { newest.withLockedValue { $0 } }

    func note(_ revision: Int64) {
        newest.withLockedValue { $0 = max($0 ?? revision, revision) }
    }
}
