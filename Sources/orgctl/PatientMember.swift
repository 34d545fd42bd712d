import ArgumentParser
import OrgdClient
import OrgdProto

struct PatientMember: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "patient-member",
        abstract: "An organisation's patients: add, update, remove (admin), list (admin or its membership managers).",
        subcommands: [Add.self, Update.self, Remove.self, List.self]
    )

    static func show(_ member: Orgd_V1_PatientMembership, format: OutputFormat) throws {
        if format != .table { return try Output.emit(member, format) }
        Output.fields([
            ("organization", member.organizationID), ("patient", member.patientID),
            ("name", "\(member.patient.givenName) \(member.patient.familyName)"), ("primary", "\(member.isPrimary)"),
        ])
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a patient to an organisation.")
        @OptionGroup var connection: ConnectionOptions
        @Option(name: .customLong("org"), help: "Organisation id.") var organization: String
        @Option(help: "Patient record id.") var patient: String
        @Flag(help: "Make this the patient's primary responsible organisation.") var primary = false
        @Option(help: "Idempotency key: repeating the command with it adds once.") var idempotencyKey: String?

        func run() async throws {
            var request = Orgd_V1_AddPatientMemberRequest()
            request.organizationID = organization
            request.patientID = patient
            request.isPrimary = primary
            var options = connection.callOptions
            options.idempotencyKey = idempotencyKey
            try await connection.run { client in
                try PatientMember.show(try await client.memberships.addPatientMember(request, options: options), format: connection.output)
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set or clear the primary flag.")
        @OptionGroup var connection: ConnectionOptions
        @Option(name: .customLong("org"), help: "Organisation id.") var organization: String
        @Option(help: "Patient record id.") var patient: String
        @Option(help: "true or false.") var primary: Bool

        func run() async throws {
            var request = Orgd_V1_UpdatePatientMemberRequest()
            request.organizationID = organization
            request.patientID = patient
            request.isPrimary = primary
            try await connection.run { client in
                try PatientMember.show(try await client.memberships.updatePatientMember(request, options: connection.callOptions), format: connection.output)
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a patient from an organisation.")
        @OptionGroup var connection: ConnectionOptions
        @Option(name: .customLong("org"), help: "Organisation id.") var organization: String
        @Option(help: "Patient record id.") var patient: String

        func run() async throws {
            var request = Orgd_V1_RemovePatientMemberRequest()
            request.organizationID = organization
            request.patientID = patient
            try await connection.run { client in
                let response = try await client.memberships.removePatientMember(request, options: connection.callOptions)
                if connection.output == .table { print("removed patient \(patient) from organization \(organization)") } else if connection.output != .id { try Output.emit(response, connection.output) }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List an organisation's patients.")
        @OptionGroup var connection: ConnectionOptions
        @Option(name: .customLong("org"), help: "Organisation id.") var organization: String
        @Option(help: "At most this many per page (0: the server's default).") var pageSize: Int32 = 0
        @Option(help: "The page after the one that printed this token (next_page_token).") var pageToken: String = ""

        func run() async throws {
            var request = Orgd_V1_ListPatientMembersRequest()
            request.organizationID = organization
            request.pageSize = pageSize
            request.pageToken = pageToken
            try await connection.run { client in
                let response = try await client.memberships.listPatientMembers(request, options: connection.callOptions)
                if connection.output != .table { return try Output.emit(response, connection.output) }
                Output.table(["PATIENT", "NAME", "PRIMARY"], response.members.map {
                    [$0.patientID, "\($0.patient.givenName) \($0.patient.familyName)", "\($0.isPrimary)"]
                })
                print("\(response.totalCount) in all" + (response.nextPageToken.isEmpty ? "" : "; next page: --page-token \(response.nextPageToken)"))
            }
        }
    }
}
