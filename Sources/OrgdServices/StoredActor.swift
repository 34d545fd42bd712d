import OrgdProto

/// The stored name of whoever made a change — `user:<id>`, `service:<id>` or
/// `local`, optionally followed by `>user:<id>` for the user a service acted
/// for (`Principal.key`) — taken apart for the wire, where an actor field is a
/// plain id with its kind said beside it.
struct StoredActor: Equatable {
    var id: String
    var kind: Orgd_V1_ActorKind
    /// The plain user id acted for, or "".
    var actingFor: String

    init(_ stored: String) {
        let parts = stored.split(separator: ">", maxSplits: 1, omittingEmptySubsequences: false)
        (id, kind) = Self.name(parts.first.map(String.init) ?? "")
        actingFor = parts.count > 1 ? Self.name(String(parts[1])).id : ""
    }

    /// Splits an acted-for field, which is stored either plain or as `user:<id>`.
    static func plainUserID(_ stored: String) -> String {
        stored.hasPrefix("user:") ? String(stored.dropFirst(5)) : stored
    }

    private static func name(_ text: String) -> (id: String, kind: Orgd_V1_ActorKind) {
        if text == "local" { return ("", .localOperator) }
        if text.hasPrefix("user:") { return (String(text.dropFirst(5)), .user) }
        if text.hasPrefix("service:") { return (String(text.dropFirst(8)), .serviceAccount) }
        // Not written by this version: shown as it is, kind unknown.
        return (text, .unspecified)
    }
}
