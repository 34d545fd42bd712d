import ArgumentParser
import OrgdClient
import OrgdProto
import SwiftProtobuf

/// The spellings orgctl accepts and prints for the schema's enums.
enum Names {
    static let systemRoles: [String: Orgd_V1_SystemRole] = ["none": .none, "admin": .admin, "superadmin": .superadmin]
    static let userStatuses: [String: Orgd_V1_UserStatus] = ["invited": .invited, "active": .active, "disabled": .disabled]
    static let staffRoles: [String: Orgd_V1_StaffRole] = ["membership_manager": .membershipManager, "agent": .agent]

    /// A value by its short name (`admin`, any case) or by the name JSON
    /// prints for it (`SYSTEM_ROLE_ADMIN`): what `-o json` shows can be
    /// given back.
    static func parse<T: SwiftProtobuf.Enum>(_ text: String, in table: [String: T], option: String) throws -> T {
        if let value = table[text] ?? table[text.lowercased()] ?? jsonNames(table)[text.uppercased()] { return value }
        let example = jsonNames(table).keys.sorted().first.map { " (or the JSON names, e.g. \($0))" } ?? ""
        throw ValidationError("\(option) must be one of \(table.keys.sorted().joined(separator: ", "))\(example), not \(text)")
    }

    /// The JSON names of `table`'s values: those of the schema's enum that
    /// has every one of them, by number, each named `…_SHORT`.
    static func jsonNames<T: SwiftProtobuf.Enum>(_ table: [String: T]) -> [String: T] {
        for symbol in OrgdSchema.symbols.values {
            guard case .enumeration(let enumeration) = symbol.kind else { continue }
            var names: [String: T] = [:]
            for (short, value) in table {
                guard let match = enumeration.value.first(where: {
                    $0.number == Int32(value.rawValue) && ($0.name == short.uppercased() || $0.name.hasSuffix("_" + short.uppercased()))
                }) else { break }
                names[match.name] = value
            }
            if names.count == table.count { return names }
        }
        return [:]
    }

    static func name<T: Equatable>(_ value: T, in table: [String: T]) -> String {
        table.first { $0.value == value }?.key ?? "unspecified"
    }

    /// Shell completion of an enum-valued option: its short names.
    static func completion<T>(_ table: [String: T]) -> CompletionKind {
        .list(table.keys.sorted())
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
