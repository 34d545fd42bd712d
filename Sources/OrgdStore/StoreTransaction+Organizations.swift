import Foundation
import OrgdCore

/// What a new organisation is made of; already validated by the caller.
public struct NewOrganization: Sendable {
    public var name: String
    public var kind: OrganizationKind
    public var identifier: ExternalIdentifier?
    public init(name: String, kind: OrganizationKind, identifier: ExternalIdentifier?) {
        self.name = name
        self.kind = kind
        self.identifier = identifier
    }
}

/// The fields an update names; nil leaves a field as it is.
public struct OrganizationChanges: Sendable {
    public var name: String?
    public var kind: OrganizationKind?
    /// `.some(nil)` removes the identifier.
    public var identifier: ExternalIdentifier??
    public var active: Bool?
    public init(name: String? = nil, kind: OrganizationKind? = nil, identifier: ExternalIdentifier?? = nil, active: Bool? = nil) {
        self.name = name
        self.kind = kind
        self.identifier = identifier
        self.active = active
    }
}

/// Filters for listing organisations.
public struct OrganizationFilter: Sendable, Hashable {
    public var kind: OrganizationKind?
    public var active: Bool?
    /// Case-insensitive name prefix; empty for none.
    public var namePrefix: String
    public init(kind: OrganizationKind? = nil, active: Bool? = nil, namePrefix: String = "") {
        self.kind = kind
        self.active = active
        self.namePrefix = namePrefix
    }
}

extension StoreTransaction {
    private static let organizationColumns =
        "seq, id, name, type, identifier_system, identifier_value, active, create_time, update_time, version"

    /// Creates an organisation with a new id.
    public func createOrganization(_ new: NewOrganization) throws -> OrganizationRecord {
        try checkIdentifierFree(new.identifier, except: nil)
        let id = UUID().uuidString.lowercased()
        try execute(
            """
            INSERT INTO organization (id, name, type, identifier_system, identifier_value, active, create_time, update_time, version)
            VALUES (?, ?, ?, ?, ?, 1, ?, ?, 1)
            """,
            [id, new.name, new.kind.rawValue, new.identifier?.system, new.identifier?.value, now.storedMicros, now.storedMicros]
        )
        return try organization(id: id)
    }

    /// The organisation with `id`, or NOT_FOUND.
    public func organization(id: String) throws -> OrganizationRecord {
        guard let row = try fetchOne("SELECT \(Self.organizationColumns) FROM organization WHERE id = ?", [id]) else {
            throw RPCError.notFound("organization", id: id)
        }
        return Self.organization(row)
    }

    /// Applies `changes` if the stored version is `expectedVersion` (0 skips the
    /// check); ABORTED when someone else changed it first. A change that
    /// alters nothing still counts as a change and bumps the version.
    public func updateOrganization(id: String, expectedVersion: Int64, _ changes: OrganizationChanges) throws -> OrganizationRecord {
        var current = try organization(id: id)
        try checkVersion(current.version, expected: expectedVersion, what: "organization \(id)")
        if let name = changes.name { current.name = name }
        if let kind = changes.kind { current.kind = kind }
        if let identifier = changes.identifier {
            try checkIdentifierFree(identifier, except: id)
            current.identifier = identifier
        }
        if let active = changes.active { current.active = active }
        try execute(
            """
            UPDATE organization
            SET name = ?, type = ?, identifier_system = ?, identifier_value = ?, active = ?, update_time = ?, version = version + 1
            WHERE id = ? AND version = ?
            """,
            [current.name, current.kind.rawValue, current.identifier?.system, current.identifier?.value,
             current.active, now.storedMicros, id, current.version]
        )
        return try organization(id: id)
    }

    /// One page of organisations in creation order, after `after` (a `seq`).
    ///
    /// Keyset paging on the insertion sequence never skips or repeats a row,
    /// whatever is inserted meanwhile: new rows only ever sort last.
    public func listOrganizations(_ filter: OrganizationFilter, after: Int64?, limit: Int) throws -> Page<OrganizationRecord> {
        var conditions = ["seq > ?"]
        var arguments: SQLArguments = [after ?? 0]
        if let kind = filter.kind {
            conditions.append("type = ?")
            arguments += [kind.rawValue]
        }
        if let active = filter.active {
            conditions.append("active = ?")
            arguments += [active]
        }
        if !filter.namePrefix.isEmpty {
            conditions.append("name \(dialect.caseInsensitiveLike) ? ESCAPE '\\'")
            arguments += [Self.likePrefix(filter.namePrefix)]
        }
        arguments += [limit + 1]
        let rows = try fetchAll(
            "SELECT \(Self.organizationColumns) FROM organization WHERE \(conditions.joined(separator: " AND ")) ORDER BY seq LIMIT ?",
            arguments
        )
        let more = rows.count > limit
        let page = rows.prefix(limit)
        return Page(items: page.map(Self.organization), nextAfter: more ? page.last.map { $0["seq"] } : nil)
    }

    private func checkIdentifierFree(_ identifier: ExternalIdentifier?, except id: String?) throws {
        guard let identifier else { return }
        if let holder = try fetchValue(String.self, "SELECT id FROM organization WHERE identifier_system = ? AND identifier_value = ?", [identifier.system, identifier.value]
        ), holder != id {
            throw RPCError(
                .alreadyExists,
                "identifier: \(identifier.system)|\(identifier.value) already belongs to organization \(holder)",
                fieldViolations: [.init(field: "identifier", description: "already belongs to organization \(holder)")]
            )
        }
    }

    /// A LIKE pattern matching `prefix` literally, then anything.
    static func likePrefix(_ prefix: String) -> String {
        var escaped = ""
        for character in prefix {
            if character == "%" || character == "_" || character == "\\" { escaped.append("\\") }
            escaped.append(character)
        }
        return escaped + "%"
    }

    static func organization(_ row: SQLRow) -> OrganizationRecord {
        let system: String? = row["identifier_system"]
        let value: String? = row["identifier_value"]
        return OrganizationRecord(
            id: row["id"],
            name: row["name"],
            kind: OrganizationKind(rawValue: row["type"]) ?? .department,
            identifier: system.flatMap { system in value.map { ExternalIdentifier(system: system, value: $0) } },
            active: row["active"],
            createTime: Date(storedMicros: row["create_time"]),
            updateTime: Date(storedMicros: row["update_time"]),
            version: row["version"]
        )
    }
}
