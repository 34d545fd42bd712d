import Foundation
import OrgdCore

/// What a study collects its data from (seed 002's `dataSources`).
public struct DataSourceRecord: Sendable, Equatable {
    public enum Kind: Int, Sendable { case app = 1, device = 2 }
    public var id: String
    public var name: String
    public var type: Kind
}

/// A data source to add, with the request field it came from.
public struct DataSourceInput: Sendable {
    public var name: String
    public var type: DataSourceRecord.Kind
    public var field: String
    public init(name: String, type: DataSourceRecord.Kind, field: String) {
        self.name = name
        self.type = type
        self.field = field
    }
}

extension StoreTransaction {
    /// A request has at most this many data sources.
    public static let maximumDataSources = 20

    /// The request's data sources, in the order added.
    public func dataSources(requestID: String) throws -> [DataSourceRecord] {
        try fetchAll("SELECT id, name, type FROM consent_request_data_source WHERE consent_request_id = ? ORDER BY position", [requestID])
            .map { DataSourceRecord(id: $0["id"], name: $0["name"], type: DataSourceRecord.Kind(rawValue: $0["type"]) ?? .app) }
    }

    /// Removes data sources by id, then adds new ones; the caller bumps the
    /// request's version. Data sources describe collection, not consent:
    /// no consent or history row is touched. A name already in the request
    /// (case-insensitively, also among those added together) is
    /// ALREADY_EXISTS naming the field; an id the request does not have is
    /// NOT_FOUND; more than `maximumDataSources` in all is INVALID_ARGUMENT.
    /// Returns whether anything changed.
    @discardableResult
    public func changeDataSources(requestID: String, add: [DataSourceInput], removeIDs: [(id: String, field: String)], addField: String) throws -> Bool {
        for (id, field) in removeIDs {
            try execute("DELETE FROM consent_request_data_source WHERE consent_request_id = ? AND id = ?", [requestID, id])
            if changes == 0 { throw RPCError.notFound(field: field, "data source", id: "\(id) of consent request \(requestID)") }
        }
        let existing = try dataSources(requestID: requestID)
        guard existing.count + add.count <= Self.maximumDataSources else {
            throw RPCError.invalidArgument(field: addField, "a consent request has at most \(Self.maximumDataSources) data sources; it would have \(existing.count + add.count)")
        }
        var taken = Set(existing.map { $0.name.lowercased() })
        let position = try fetchValue(Int64.self, "SELECT coalesce(max(position), -1) FROM consent_request_data_source WHERE consent_request_id = ?", [requestID]) ?? -1
        for (offset, input) in add.enumerated() {
            guard taken.insert(input.name.lowercased()).inserted else {
                throw RPCError(.alreadyExists, "\(input.field).name: consent request \(requestID) already has a data source named \(input.name) (names are compared case-insensitively)",
                               fieldViolations: [RPCError.FieldViolation(field: "\(input.field).name", description: "already a data source of this request")])
            }
            try execute(
                "INSERT INTO consent_request_data_source (id, consent_request_id, name, name_normalized, type, position) VALUES (?, ?, ?, ?, ?, ?)",
                [UUID().uuidString.lowercased(), requestID, input.name, input.name.lowercased(), input.type.rawValue, position + 1 + Int64(offset)]
            )
        }
        return !removeIDs.isEmpty || !add.isEmpty
    }
}
