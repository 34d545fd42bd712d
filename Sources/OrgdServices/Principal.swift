import OrgdStore

/// Who is calling, after authentication.
public struct Principal: Sendable, Equatable {
    /// The authenticated identity.
    public enum Identity: Sendable, Equatable {
        /// A caller on the Unix socket without a token: the local operator.
        case localOperator
        /// A caller with no token calling a method open to anyone (health
        /// checks over TCP). Holds no role and is no user.
        case anonymous
        case user(UserRecord)
        case serviceAccount(ServiceAccountRecord)
    }

    public var identity: Identity
    /// The user a service account acts for (`orgd-act-as`), if any.
    public var actingFor: UserRecord?

    public init(identity: Identity, actingFor: UserRecord? = nil) {
        self.identity = identity
        self.actingFor = actingFor
    }

    /// The system role that authorisation uses: the acted-for user's when a
    /// service acts for someone, so a service never lends its own rights.
    public var systemRole: SystemRole {
        if let actingFor { return actingFor.systemRole }
        switch identity {
        case .localOperator: return .superadmin
        case .anonymous: return .none
        case .user(let user): return user.systemRole
        case .serviceAccount(let account): return account.systemRole
        }
    }

    /// The user whose rights apply (the caller, or the one acted for).
    public var effectiveUser: UserRecord? {
        if let actingFor { return actingFor }
        if case .user(let user) = identity { return user }
        return nil
    }

    /// Who authenticated, without whom they act for: `local`, `user:<id>`
    /// or `service:<id>` (the audit log's and consent history's actor).
    public var actor: String {
        switch identity {
        case .localOperator: "local"
        case .anonymous: "anonymous"
        case .user(let user): "user:\(user.id)"
        case .serviceAccount(let account): "service:\(account.id)"
        }
    }

    /// The user acted for as `user:<id>`, or "" when none.
    public var actingForKey: String { actingFor.map { "user:\($0.id)" } ?? "" }

    /// A stable name for logs and idempotency keys: the actor, and whom it acts for.
    public var key: String {
        actingFor == nil ? actor : "\(actor)>\(actingForKey)"
    }
}
