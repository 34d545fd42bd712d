import Crypto
import Foundation
import OrgdCore

/// What a new user is made of; already validated by the caller.
public struct NewUser: Sendable {
    public var email: String
    public var title: String
    public var givenName: String
    public var familyName: String
    public var systemRole: SystemRole
    public var status: UserStatus
    public init(email: String, title: String, givenName: String, familyName: String, systemRole: SystemRole, status: UserStatus) {
        self.email = email
        self.title = title
        self.givenName = givenName
        self.familyName = familyName
        self.systemRole = systemRole
        self.status = status
    }
}

/// A freshly made token: its record and the secret, which is never stored.
public struct IssuedToken: Sendable {
    public var record: TokenRecord
    public var secret: String
}

/// The principal behind a live token.
public enum TokenPrincipal: Sendable, Equatable {
    case user(UserRecord)
    case serviceAccount(ServiceAccountRecord)
}

extension StoreTransaction {
    private static let userColumns =
        "seq, id, email, title, given_name, family_name, system_role, status, create_time, update_time, version"

    /// Creates a user; ALREADY_EXISTS when the e-mail's key (NFC, any case) is taken.
    public func createUser(_ new: NewUser) throws -> UserRecord {
        let normalized = EmailKey.of(new.email)
        try checkEmailFree(new.email, except: nil)
        let id = UUID().uuidString.lowercased()
        try execute(
            """
            INSERT INTO "user" (id, email, email_normalized, title, given_name, family_name, system_role, status, create_time, update_time, version)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)
            """,
            [id, new.email, normalized, new.title, new.givenName, new.familyName, new.systemRole.rawValue,
             new.status.rawValue, now.storedMicros, now.storedMicros]
        )
        return try user(id: id)
    }

    /// The user with `id`, or NOT_FOUND.
    public func user(id: String) throws -> UserRecord {
        guard let row = try fetchOne("SELECT \(Self.userColumns) FROM \"user\" WHERE id = ?", [id]) else {
            throw RPCError.notFound("user", id: id)
        }
        return Self.user(row)
    }

    /// Creates a service account; ALREADY_EXISTS when the name is taken.
    public func createServiceAccount(name: String, systemRole: SystemRole, mayActAs: Bool, mailer: Bool = false) throws -> ServiceAccountRecord {
        if try fetchOne("SELECT 1 FROM service_account WHERE name = ?", [name]) != nil {
            throw RPCError(
                .alreadyExists, "name: a service account named \(name) already exists",
                fieldViolations: [.init(field: "name", description: "already exists")]
            )
        }
        let id = UUID().uuidString.lowercased()
        try execute(
            "INSERT INTO service_account (id, name, system_role, may_act_as, mailer, create_time) VALUES (?, ?, ?, ?, ?, ?)",
            [id, name, systemRole.rawValue, mayActAs, mailer, now.storedMicros]
        )
        return try serviceAccount(id: id)
    }

    /// The service account with `id`, or NOT_FOUND.
    public func serviceAccount(id: String) throws -> ServiceAccountRecord {
        guard let row = try fetchOne("SELECT * FROM service_account WHERE id = ?", [id]) else {
            throw RPCError.notFound("service account", id: id)
        }
        return Self.serviceAccount(row)
    }

    /// One page of service accounts in creation order.
    public func listServiceAccounts(after: Int64?, limit: Int) throws -> Page<ServiceAccountRecord> {
        let rows = try fetchAll("SELECT * FROM service_account WHERE seq > ? ORDER BY seq LIMIT ?", [after ?? 0, limit + 1])
        return Self.page(rows, limit: limit, Self.serviceAccount)
    }

    /// Issues a token for `owner`. The secret is 256 random bits; only its
    /// SHA-256 is stored, with a short prefix to recognise it in listings.
    public func createToken(owner: TokenOwner, description: String, expireTime: Date?) throws -> IssuedToken {
        switch owner {
        case .user(let id): _ = try RPCError.referenced(from: "user_id") { try user(id: id) }
        case .serviceAccount(let id): _ = try RPCError.referenced(from: "service_account_id") { try serviceAccount(id: id) }
        }
        let secret = "orgd_" + Self.randomBase64URL(byteCount: 32)
        let prefix = String(secret.prefix(12))
        let id = UUID().uuidString.lowercased()
        let (userID, accountID): (String?, String?) = switch owner {
        case .user(let id): (id, nil)
        case .serviceAccount(let id): (nil, id)
        }
        try execute(
            """
            INSERT INTO api_token (id, prefix, secret_hash, user_id, service_account_id, description, create_time, expire_time)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [id, prefix, Data(Self.hash(secret: secret)), userID, accountID, description, now.storedMicros, expireTime?.storedMicros]
        )
        return IssuedToken(record: try token(id: id), secret: secret)
    }

    /// The token with `id`, or NOT_FOUND.
    public func token(id: String) throws -> TokenRecord {
        guard let row = try fetchOne("SELECT * FROM api_token WHERE id = ?", [id]) else {
            throw RPCError.notFound("token", id: id)
        }
        return Self.token(row)
    }

    /// One page of tokens in creation order.
    public func listTokens(includeRevoked: Bool, after: Int64?, limit: Int) throws -> Page<TokenRecord> {
        let rows = try fetchAll(
            "SELECT * FROM api_token WHERE seq > ? AND (? = 1 OR revoke_time IS NULL) ORDER BY seq LIMIT ?",
            [after ?? 0, includeRevoked, limit + 1]
        )
        return Self.page(rows, limit: limit, Self.token)
    }

    /// Revokes a token at once; revoking twice is harmless.
    public func revokeToken(id: String) throws -> TokenRecord {
        _ = try token(id: id)
        try execute("UPDATE api_token SET revoke_time = ? WHERE id = ? AND revoke_time IS NULL", [now.storedMicros, id])
        return try token(id: id)
    }

    /// The principal for a presented secret, or nil when the token is unknown,
    /// revoked, expired, or belongs to a disabled user.
    public func principal(forSecret secret: String) throws -> TokenPrincipal? {
        let presented = Self.hash(secret: secret)
        // Looked up by its SHA-256 (an index on a hash of 256 random bits
        // reveals nothing useful by timing), then compared in constant time.
        guard let row = try fetchOne(
            "SELECT secret_hash, user_id, service_account_id, expire_time, revoke_time FROM api_token WHERE secret_hash = ?",
            [Data(presented)]
        ), Self.constantTimeEqual([UInt8](row["secret_hash"] as Data), presented) else { return nil }
        if (row["revoke_time"] as Int64?) != nil { return nil }
        if let expire: Int64 = row["expire_time"], expire <= now.storedMicros { return nil }
        if let userID: String = row["user_id"] {
            let owner = try user(id: userID)
            return owner.status == .disabled ? nil : .user(owner)
        }
        return .serviceAccount(try serviceAccount(id: row["service_account_id"]))
    }

    /// Compares every byte whatever the first difference, so the time taken
    /// says nothing about where two secrets differ.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    static func hash(secret: String) -> [UInt8] {
        Array(SHA256.hash(data: Data(secret.utf8)))
    }

    static func randomBase64URL(byteCount: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<byteCount).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func page<T>(_ rows: [SQLRow], limit: Int, _ map: (SQLRow) -> T) -> Page<T> {
        let more = rows.count > limit
        let page = rows.prefix(limit)
        return Page(items: page.map(map), nextAfter: more ? page.last.map { $0["seq"] } : nil)
    }

    static func user(_ row: SQLRow) -> UserRecord {
        UserRecord(
            id: row["id"], email: row["email"], title: row["title"], givenName: row["given_name"],
            familyName: row["family_name"], systemRole: SystemRole(rawValue: row["system_role"]) ?? .none,
            status: UserStatus(rawValue: row["status"]) ?? .disabled,
            createTime: Date(storedMicros: row["create_time"]), updateTime: Date(storedMicros: row["update_time"]),
            version: row["version"]
        )
    }

    static func serviceAccount(_ row: SQLRow) -> ServiceAccountRecord {
        ServiceAccountRecord(
            id: row["id"], name: row["name"], systemRole: SystemRole(rawValue: row["system_role"]) ?? .none,
            mayActAs: row["may_act_as"], createTime: Date(storedMicros: row["create_time"]), mailer: row["mailer"]
        )
    }

    static func token(_ row: SQLRow) -> TokenRecord {
        let userID: String? = row["user_id"]
        let expire: Int64? = row["expire_time"]
        let revoke: Int64? = row["revoke_time"]
        return TokenRecord(
            id: row["id"], prefix: row["prefix"],
            owner: userID.map { .user(id: $0) } ?? .serviceAccount(id: row["service_account_id"]),
            description: row["description"], createTime: Date(storedMicros: row["create_time"]),
            expireTime: expire.map(Date.init(storedMicros:)), revokeTime: revoke.map(Date.init(storedMicros:))
        )
    }
}
