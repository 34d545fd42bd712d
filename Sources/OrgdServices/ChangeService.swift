import OrgdCore
import OrgdProto
import OrgdStore
import SwiftProtobuf

/// `orgd.v1.ChangeService`: the change feed, for service accounts and
/// admins. Positions are plain (revision, entry) pairs, not signed tokens:
/// the feed holds no secret, and any daemon over the same database answers
/// the next page.
struct ChangeService {
    func register(in table: inout MethodTable) {
        table.addRead(Method.ListChanges.self) { (request: Orgd_V1_ListChangesRequest, _, tx) in
            guard request.afterRevision >= 0 else { throw RPCError.invalidArgument(field: "after_revision", "must not be negative") }
            guard request.afterEntry >= 0 else { throw RPCError.invalidArgument(field: "after_entry", "must not be negative") }
            let limit = try PageToken.pageSize(request.pageSize)
            let page = try tx.listChanges(after: ChangeCursor(revision: request.afterRevision, entry: request.afterEntry), limit: limit)
            var response = Orgd_V1_ListChangesResponse()
            response.changes = page.changes.map { change in
                var message = Orgd_V1_Change()
                message.revision = change.revision
                message.entry = change.entry
                message.kind = change.kind
                message.id = change.entityID
                message.commitTime = Google_Protobuf_Timestamp(change.commitTime)
                return message
            }
            response.latestRevision = page.latestRevision
            response.more = page.more
            return response
        }
    }
}
