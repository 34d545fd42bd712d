import OrgdCore
import OrgdStore

/// Who may call a method. Every method names exactly one rule in
/// `ServiceCatalog`; this is the one place those rules are decided.
public enum AccessRule: Sendable, Equatable {
    /// Anyone who reached the server, even unauthenticated over TCP
    /// (health checks, for load balancers and probes).
    case anyone
    /// Any authenticated principal.
    case authenticated
    /// System role admin or superadmin (seed 001: organisation CRUD and direct
    /// membership changes).
    case admin
    /// System role superadmin (tokens and service accounts).
    case superadmin

    /// Throws PERMISSION_DENIED unless `principal` satisfies the rule.
    public func check(_ principal: Principal, method: String) throws {
        switch self {
        case .anyone, .authenticated:
            return
        case .admin:
            guard principal.systemRole >= .admin else {
                throw RPCError.permissionDenied("\(method) requires the admin or superadmin system role")
            }
        case .superadmin:
            guard principal.systemRole >= .superadmin else {
                throw RPCError.permissionDenied("\(method) requires the superadmin system role")
            }
        }
    }
}
