import OrgdCore
import OrgdProto
import OrgdStore
import SwiftProtobuf

/// `orgd.v1.AuditService`: reading the audit log. Superadmin only.
struct AuditService {

    func register(in table: inout MethodTable) {
        table.addRead(Method.ListAuditLog.self) { (request: Orgd_V1_ListAuditLogRequest, context, tx) in
            let limit = try PageToken.pageSize(request.pageSize)
            let scope = "audit|\(request.method)"
            let after = try context.pageTokens.decode(request.pageToken, scope: scope)
            let page = try tx.listAudit(method: request.method, after: after, limit: limit)
            var response = Orgd_V1_ListAuditLogResponse()
            response.entries = page.items.map { entry in
                var message = Orgd_V1_AuditEntry()
                message.sequence = entry.sequence
                message.time = Google_Protobuf_Timestamp(entry.time)
                let who = StoredActor(entry.actor)
                message.actor = who.id
                message.actorKind = who.kind
                message.actingFor = StoredActor.plainUserID(entry.actingFor)
                message.method = entry.method
                message.requestJson = entry.requestJSON
                return message
            }
            response.nextPageToken = context.pageTokens.encode(after: page.nextAfter, scope: scope)
            return response
        }
    }
}
