import SwiftProtobuf

/// Which calls are administrative changes, recorded in the audit log
/// (organisations, people and memberships, tokens, invitations, consent
/// requests). Reads are not changes; a patient's own consent answers have
/// their own history; the outbox's claims and acknowledgements are delivery
/// bookkeeping.
enum AuditPolicy {
    static let audited: [String: Set<String>] = [
        "orgd.v1.OrganizationService": ["CreateOrganization", "UpdateOrganization", "DeactivateOrganization", "ReactivateOrganization"],
        "orgd.v1.MembershipService": [
            "CreateUser", "UpdateUser", "CreatePatient", "UpdatePatient", "AddStaffMember", "UpdateStaffMember",
            "RemoveStaffMember", "AddPatientMember", "UpdatePatientMember", "RemovePatientMember",
        ],
        "orgd.v1.TokenService": ["CreateServiceAccount", "CreateToken", "RevokeToken"],
        "orgd.v1.InvitationService": [
            "InviteMember", "BulkInviteMembers", "ResendInvitation", "WithdrawInvitation", "AcceptInvitation", "DeclineInvitation",
        ],
        "orgd.v1.ConsentService": ["CreateScope", "CreateConsentRequest", "UpdateConsentRequest", "EndConsentRequest", "AskPatients"],
    ]

    /// Requests whose fields are secrets: the log keeps only that a call was made.
    static let secret: Set<String> = ["orgd.v1.InvitationService/AcceptInvitation", "orgd.v1.InvitationService/DeclineInvitation"]

    static func isAudited(service: String, method: String) -> Bool {
        audited[service]?.contains(method) ?? false
    }

    /// The request as the audit log keeps it: JSON with the schema's field
    /// names, or only that a call was made for secrets. `AuditRecord` caps it
    /// at `AuditRecord.maximumRequestJSONBytes`.
    static func requestJSON(_ request: some SwiftProtobuf.Message, method: String) -> String {
        if secret.contains(method) { return #"{"token":"(not recorded)"}"# }
        var options = JSONEncodingOptions()
        options.preserveProtoFieldNames = true
        return (try? request.jsonString(options: options)) ?? "{}"
    }
}
