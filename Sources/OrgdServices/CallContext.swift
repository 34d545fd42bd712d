import Foundation
import Logging
import OrgdCore
import OrgdProto
import OrgdStore

/// How a call reached the server.
public enum Transport: String, Sendable {
    case unix
    case tcp
}

/// What the server knows about a connection, without the socket itself.
public struct ConnectionInfo: Sendable {
    public var transport: Transport
    /// The peer, e.g. `127.0.0.1:52344` or `pid=42 uid=1000`.
    public var peer: String
    public var connectionID: UInt64

    public init(transport: Transport, peer: String, connectionID: UInt64) {
        self.transport = transport
        self.peer = peer
        self.connectionID = connectionID
    }
}

/// A call's metadata: lower-cased keys, values in arrival order.
public struct Metadata: Sendable {
    private var entries: [(key: String, value: String)]

    public init(_ keyValues: [Ttrpc_KeyValue]) {
        entries = keyValues.map { (key: Self.lowercased($0.key), value: $0.value) }
    }

    /// Metadata from any transport's key-value pairs (gRPC's headers).
    public init(pairs: [(key: String, value: String)]) {
        entries = pairs.map { (key: Self.lowercased($0.key), value: $0.value) }
    }

    /// The key itself when it is lower-case already (as clients send it):
    /// no new string per call.
    private static func lowercased(_ key: String) -> String {
        key.utf8.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) || !key.utf8.allSatisfy({ $0 < 0x80 })
            ? key.lowercased() : key
    }

    /// The first value for `key`.
    public subscript(key: String) -> String? {
        entries.first { $0.key == key }?.value
    }
}

/// Everything a handler knows about the call besides its request message.
public struct CallContext: Sendable {
    public var principal: Principal
    public var connection: ConnectionInfo
    public var metadata: Metadata
    /// `service/method`, e.g. `orgd.v1.OrganizationService/CreateOrganization`.
    public var method: String
    public var logger: Logger
    /// The store, for access rules that depend on the data.
    let store: Store

    /// Page tokens under the key every daemon over this database shares.
    var pageTokens: PageTokens { PageTokens(key: store.pageTokenKey) }

    init(principal: Principal, connection: ConnectionInfo, metadata: Metadata, method: String, logger: Logger, store: Store) {
        self.principal = principal
        self.connection = connection
        self.metadata = metadata
        self.method = method
        self.logger = logger
        self.store = store
    }
}
