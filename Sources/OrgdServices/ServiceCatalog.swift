/// Every service and method the schema declares, so that a method not built
/// yet answers "not implemented yet" rather than "unknown method", and health
/// checks know the service names.
public enum ServiceCatalog {
    public static let declared: [String: [String]] = [
        "orgd.v1.OrganizationService": [
            "CreateOrganization", "GetOrganization", "UpdateOrganization", "ListOrganizations",
            "DeactivateOrganization", "ReactivateOrganization", "ExportOrganizationFhir",
        ],
        "orgd.v1.MembershipService": [
            "CreateUser", "GetUser", "UpdateUser", "ListUsers",
            "CreatePatient", "GetPatient", "UpdatePatient", "ListPatients",
            "AddStaffMember", "UpdateStaffMember", "RemoveStaffMember", "ListStaffMembers",
            "AddPatientMember", "UpdatePatientMember", "RemovePatientMember", "ListPatientMembers",
            "GetProfile", "ListMyOrganizations",
        ],
        "orgd.v1.InvitationService": [
            "InviteMember", "BulkInviteMembers", "GetInvitation", "ListInvitations", "ResendInvitation",
            "WithdrawInvitation", "AcceptInvitation", "DeclineInvitation", "ClaimOutbox", "AckOutbox",
        ],
        "orgd.v1.ConsentService": [
            "CreateScope", "ListScopes", "CreateConsentRequest", "GetConsentRequest", "UpdateConsentRequest",
            "EndConsentRequest", "ListConsentRequests", "AskPatients", "GetPatientConsents", "AnswerConsents",
            "UpdateConsents", "RevokeConsents", "ListConsentHistory", "CheckAccess", "BatchCheckAccess",
            "ListAccessiblePatients",
        ],
        "orgd.v1.AuditService": ["ListAuditLog"],
        "orgd.v1.TokenService": [
            "CreateServiceAccount", "ListServiceAccounts", "CreateToken", "ListTokens", "RevokeToken",
        ],
    ]
}
