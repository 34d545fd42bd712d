/// Who may call what: every RPC × every kind of caller, in one table.
///
/// The rule × caller part is written out cell by cell below — it is the
/// specification, not a second run of `AccessRule.check` — and each RPC's rule
/// comes from its registration (`Dispatcher.accessRules`). The end-to-end test
/// `AuthorizationMatrixTests` calls every RPC as every kind of caller over real
/// sockets and checks each answer against this table; `SECURITY.md`'s matrix is
/// printed from it (`orgd --print-authorization-matrix`) and a test keeps the
/// document equal to it.
public enum AuthorizationMatrix {
    /// The kinds of caller. A request in the matrix is about organisation O and
    /// patient P (and, where it names a user, P's user account).
    public enum Caller: String, CaseIterable, Sendable {
        /// The Unix socket without a token.
        case localOperator
        case superadmin
        case admin
        /// A membership manager of O.
        case managerHere
        /// A membership manager of another organisation.
        case managerElsewhere
        /// An agent (staff, not a manager) of O.
        case agent
        /// P, with their own user token.
        case patient
        /// A service account with no system role that does not act for anyone.
        case service
        /// A service account allowed to act as users, acting for P's user.
        case serviceActingForPatient
        /// A service account with no system role and the mailer permission.
        case mailerService
        /// A token whose user has been disabled.
        case disabledUser
        /// A token that has been revoked.
        case revokedToken
        /// TCP with no token at all.
        case noToken

        /// The column heading in SECURITY.md.
        public var heading: String {
            switch self {
            case .localOperator: "local operator (Unix, no token)"
            case .superadmin: "superadmin"
            case .admin: "admin"
            case .managerHere: "manager of this org"
            case .managerElsewhere: "manager of another org"
            case .agent: "agent"
            case .patient: "the patient"
            case .service: "service, no act-as"
            case .serviceActingForPatient: "service acting for the patient"
            case .mailerService: "mailer service"
            case .disabledUser: "disabled user"
            case .revokedToken: "revoked token"
            case .noToken: "no token over TCP"
            }
        }
    }

    /// What a caller gets from a method.
    public enum Outcome: String, Sendable {
        /// Past authentication and authorisation; the method may still refuse
        /// on the data (NOT_FOUND, FAILED_PRECONDITION, …).
        case allowed = "yes"
        /// PERMISSION_DENIED.
        case denied = "no"
        /// UNAUTHENTICATED.
        case unauthenticated = "unauth"
    }

    private static let y = Outcome.allowed, n = Outcome.denied, u = Outcome.unauthenticated

    /// Each rule's row, one cell per `Caller` in declaration order:
    /// local, super, admin, mgr here, mgr other, agent, patient, service, svc→P, mailer, disabled, revoked, no token.
    static let rows: [AccessRule: [Outcome]] = [
        .anyone:                     [y, y, y, y, y, y, y, y, y, y, u, u, y],
        .authenticated:              [y, y, y, y, y, y, y, y, y, y, u, u, u],
        .admin:                      [y, y, y, n, n, n, n, n, n, n, u, u, u],
        .superadmin:                 [y, y, n, n, n, n, n, n, n, n, u, u, u],
        .adminOrOrganizationManager: [y, y, y, y, n, n, n, n, n, n, u, u, u],
        .adminOrSelf:                [y, y, y, n, n, n, y, n, y, n, u, u, u],
        .patientSelf:                [n, n, n, n, n, n, y, n, y, n, u, u, u],
        .serviceOrAdmin:             [y, y, y, n, n, n, n, y, y, y, u, u, u],
        .mailer:                     [y, n, n, n, n, n, n, n, n, y, u, u, u],
    ]

    /// What `caller` gets from a method with `rule`.
    public static func outcome(_ rule: AccessRule, for caller: Caller) -> Outcome {
        let row = rows[rule]!
        return row[Caller.allCases.firstIndex(of: caller)!]
    }

    /// SECURITY.md's section: the rule × caller table, then every RPC × caller.
    public static func markdown(_ accessRules: [(method: String, rule: AccessRule)]) -> String {
        let callers = Caller.allCases
        func table(_ first: String, _ rows: [(String, [Outcome])]) -> [String] {
            ["| \(first) | " + callers.map(\.heading).joined(separator: " | ") + " |",
             "| --- |" + String(repeating: " :-: |", count: callers.count)]
                + rows.map { name, cells in "| \(name) | " + cells.map(\.rawValue).joined(separator: " | ") + " |" }
        }
        let byRule = AccessRule.allCases.map { rule in ("`\(rule.rawValue)`", callers.map { outcome(rule, for: $0) }) }
        let byMethod = accessRules.map { method, rule in
            ("`\(method)` (`\(rule.rawValue)`)", callers.map { outcome(rule, for: $0) })
        }
        return (table("rule", byRule) + [""] + table("RPC (rule)", byMethod)).joined(separator: "\n")
    }
}
