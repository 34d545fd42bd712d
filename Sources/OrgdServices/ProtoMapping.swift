import Foundation
import OrgdCore
import OrgdProto
import OrgdStore
import SwiftProtobuf

// Conversions between the store's records and the schema's messages. The
// store never sees a protobuf; this is where the two meet.

extension OrganizationKind {
    init(validating type: Orgd_V1_OrganizationType, field: String = "type") throws {
        switch type {
        case .hospitalTeam: self = .hospitalTeam
        case .gpPractice: self = .gpPractice
        case .privateClinic: self = .privateClinic
        case .department: self = .department
        case .teachingEstablishment: self = .teachingEstablishment
        case .unspecified, .UNRECOGNIZED:
            throw RPCError.invalidArgument(
                field: field,
                "required: one of hospital_team, gp_practice, private_clinic, department, teaching_establishment"
            )
        }
    }

    var proto: Orgd_V1_OrganizationType {
        switch self {
        case .hospitalTeam: .hospitalTeam
        case .gpPractice: .gpPractice
        case .privateClinic: .privateClinic
        case .department: .department
        case .teachingEstablishment: .teachingEstablishment
        }
    }
}

extension SystemRole {
    init(validating role: Orgd_V1_SystemRole, field: String) throws {
        switch role {
        case .none: self = .none
        case .admin: self = .admin
        case .superadmin: self = .superadmin
        case .unspecified, .UNRECOGNIZED:
            throw RPCError.invalidArgument(field: field, "required: one of none, admin, superadmin")
        }
    }

    var proto: Orgd_V1_SystemRole {
        switch self {
        case .none: .none
        case .admin: .admin
        case .superadmin: .superadmin
        }
    }
}

extension Google_Protobuf_Timestamp {
    init(_ date: Date) {
        self.init(date: date)
    }
}

extension OrganizationRecord {
    var proto: Orgd_V1_Organization {
        var message = Orgd_V1_Organization()
        message.id = id
        message.name = name
        message.type = kind.proto
        if let identifier {
            message.identifier.system = identifier.system
            message.identifier.value = identifier.value
        }
        message.active = active
        message.createTime = Google_Protobuf_Timestamp(createTime)
        message.updateTime = Google_Protobuf_Timestamp(updateTime)
        message.version = version
        return message
    }
}

extension ServiceAccountRecord {
    var proto: Orgd_V1_ServiceAccount {
        var message = Orgd_V1_ServiceAccount()
        message.id = id
        message.name = name
        message.systemRole = systemRole.proto
        message.mayActAs = mayActAs
        message.mailer = mailer
        message.createTime = Google_Protobuf_Timestamp(createTime)
        return message
    }
}

extension TokenRecord {
    var proto: Orgd_V1_ApiToken {
        var message = Orgd_V1_ApiToken()
        message.id = id
        message.prefix = prefix
        switch owner {
        case .user(let id): message.userID = id
        case .serviceAccount(let id): message.serviceAccountID = id
        }
        message.description_p = description
        message.createTime = Google_Protobuf_Timestamp(createTime)
        if let expireTime { message.expireTime = Google_Protobuf_Timestamp(expireTime) }
        if let revokeTime { message.revokeTime = Google_Protobuf_Timestamp(revokeTime) }
        return message
    }
}

extension UserStatus {
    init(validating status: Orgd_V1_UserStatus, field: String) throws {
        switch status {
        case .invited: self = .invited
        case .active: self = .active
        case .disabled: self = .disabled
        case .unspecified, .UNRECOGNIZED:
            throw RPCError.invalidArgument(field: field, "required: one of invited, active, disabled")
        }
    }

    var proto: Orgd_V1_UserStatus {
        switch self {
        case .invited: .invited
        case .active: .active
        case .disabled: .disabled
        }
    }
}

extension StaffRoles {
    /// A non-empty set of known roles; duplicates are harmless.
    init(validating roles: [Orgd_V1_StaffRole], field: String = "roles") throws {
        var result = StaffRoles(membershipManager: false, agent: false)
        for role in roles {
            switch role {
            case .membershipManager: result.membershipManager = true
            case .agent: result.agent = true
            case .unspecified, .UNRECOGNIZED:
                throw RPCError.invalidArgument(field: field, "each role must be membership_manager or agent")
            }
        }
        if result.isEmpty { throw RPCError.invalidArgument(field: field, "at least one of membership_manager, agent") }
        self = result
    }

    var proto: [Orgd_V1_StaffRole] {
        (membershipManager ? [.membershipManager] : []) + (agent ? [.agent] : [])
    }
}

extension UserRecord {
    var proto: Orgd_V1_User {
        var message = Orgd_V1_User()
        message.id = id
        message.email = email
        message.title = title
        message.givenName = givenName
        message.familyName = familyName
        message.systemRole = systemRole.proto
        message.status = status.proto
        message.createTime = Google_Protobuf_Timestamp(createTime)
        message.updateTime = Google_Protobuf_Timestamp(updateTime)
        message.version = version
        return message
    }
}

extension PatientRecord {
    var proto: Orgd_V1_Patient {
        var message = Orgd_V1_Patient()
        message.id = id
        message.title = title
        message.givenName = givenName
        message.familyName = familyName
        message.userID = userID ?? ""
        message.createTime = Google_Protobuf_Timestamp(createTime)
        message.updateTime = Google_Protobuf_Timestamp(updateTime)
        message.version = version
        return message
    }
}

extension StaffMember {
    var proto: Orgd_V1_StaffMembership {
        var message = Orgd_V1_StaffMembership()
        message.organizationID = membership.organizationID
        message.userID = membership.userID
        message.roles = membership.roles.proto
        message.isPrimary = membership.isPrimary
        message.createTime = Google_Protobuf_Timestamp(membership.createTime)
        message.updateTime = Google_Protobuf_Timestamp(membership.updateTime)
        message.user = user.proto
        return message
    }
}

extension PatientMember {
    var proto: Orgd_V1_PatientMembership {
        var message = Orgd_V1_PatientMembership()
        message.organizationID = membership.organizationID
        message.patientID = membership.patientID
        message.isPrimary = membership.isPrimary
        message.createTime = Google_Protobuf_Timestamp(membership.createTime)
        message.updateTime = Google_Protobuf_Timestamp(membership.updateTime)
        message.patient = patient.proto
        return message
    }
}

extension ScopeRecord {
    var proto: Orgd_V1_Scope {
        var message = Orgd_V1_Scope()
        message.id = id
        message.codingSystem = codingSystem
        message.codingCode = codingCode
        message.text = text
        return message
    }
}

extension ConsentRequestKind {
    init(validating kind: Orgd_V1_ConsentRequestKind, field: String = "kind") throws {
        switch kind {
        case .study: self = .study
        case .agency: self = .agency
        case .unspecified, .UNRECOGNIZED: throw RPCError.invalidArgument(field: field, "required: study or agency")
        }
    }

    var proto: Orgd_V1_ConsentRequestKind {
        switch self {
        case .study: .study
        case .agency: .agency
        }
    }
}

extension OrganizationRecord {
    var summary: Orgd_V1_OrganizationSummary {
        var message = Orgd_V1_OrganizationSummary()
        message.id = id
        message.name = name
        message.active = active
        return message
    }
}

extension ConsentRequestRecord {
    func proto(organization: OrganizationRecord? = nil, dataSources: [DataSourceRecord]) -> Orgd_V1_ConsentRequest {
        var message = Orgd_V1_ConsentRequest()
        message.id = id
        message.organizationID = organizationID
        message.kind = kind.proto
        message.name = name
        message.scopes = scopes.map(\.proto)
        if let startTime { message.startTime = Google_Protobuf_Timestamp(startTime) }
        if let endTime { message.endTime = Google_Protobuf_Timestamp(endTime) }
        message.createTime = Google_Protobuf_Timestamp(createTime)
        message.updateTime = Google_Protobuf_Timestamp(updateTime)
        message.version = version
        if let organization { message.organization = organization.summary }
        message.dataSources = dataSources.map(\.proto)
        return message
    }
}

extension DataSourceRecord {
    var proto: Orgd_V1_DataSource {
        var message = Orgd_V1_DataSource()
        message.id = id
        message.name = name
        message.type = switch type {
        case .app: .app
        case .device: .device
        }
        return message
    }
}

extension AccessDecision {
    var proto: Orgd_V1_CheckAccessResponse {
        var message = Orgd_V1_CheckAccessResponse()
        message.allowed = allowed
        message.reason = switch reason {
        case .allowed: .allowed
        case .unknownAgent: .unknownAgent
        case .unknownPatient: .unknownPatient
        case .unknownScope: .unknownScope
        case .notAnAgent: .notAnAgent
        case .noConsent: .noConsent
        case .agentDisabled: .agentDisabled
        }
        message.organizationID = organizationID ?? ""
        message.consentRequestID = consentRequestID ?? ""
        message.message = self.message
        return message
    }
}

extension ConsentHistoryRecord {
    var proto: Orgd_V1_ConsentHistoryEntry {
        var message = Orgd_V1_ConsentHistoryEntry()
        message.id = id
        message.patientID = patientID
        message.consentRequestID = consentRequestID
        if let scope { message.scope = scope.proto }
        message.action = action.rawValue
        if let before { message.before = before }
        if let after { message.after = after }
        let who = StoredActor(actor)
        message.actor = who.id
        message.actorKind = who.kind
        message.actingFor = StoredActor.plainUserID(actingFor)
        message.time = Google_Protobuf_Timestamp(time)
        return message
    }
}
