import ArgumentParser
import OrgdProto

/// The spellings orgctl accepts and prints for the schema's enums.
enum Names {
    static let systemRoles: [String: Orgd_V1_SystemRole] = ["none": .none, "admin": .admin, "superadmin": .superadmin]
    static let userStatuses: [String: Orgd_V1_UserStatus] = ["invited": .invited, "active": .active, "disabled": .disabled]
    static let staffRoles: [String: Orgd_V1_StaffRole] = ["membership_manager": .membershipManager, "agent": .agent]

    static func parse<T>(_ text: String, in table: [String: T], option: String) throws -> T {
        guard let value = table[text] else {
            throw ValidationError("\(option) must be one of \(table.keys.sorted().joined(separator: ", ")), not \(text)")
        }
        return value
    }

    static func name<T: Equatable>(_ value: T, in table: [String: T]) -> String {
        table.first { $0.value == value }?.key ?? "unspecified"
    }

    /// "agent,membership_manager" to roles.
    static func roles(_ text: String) throws -> [Orgd_V1_StaffRole] {
        try text.split(separator: ",").map { try parse(String($0).trimmingCharacters(in: .whitespaces), in: staffRoles, option: "--roles") }
    }

    static func roles(_ roles: [Orgd_V1_StaffRole]) -> String {
        roles.map { name($0, in: staffRoles) }.joined(separator: ",")
    }

    /// An actor field for people: "user <id>", "service <id>" or "local operator",
    /// and " for <user id>" when it acted for someone.
    static func actor(_ id: String, _ kind: Orgd_V1_ActorKind, actingFor: String = "") -> String {
        let who = switch kind {
        case .user: "user \(id)"
        case .serviceAccount: "service \(id)"
        case .localOperator: "local operator"
        default: id
        }
        return actingFor.isEmpty ? who : "\(who) for \(actingFor)"
    }
}
