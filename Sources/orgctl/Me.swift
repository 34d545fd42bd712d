import ArgumentParser
import Foundation
import OrgdClient
import OrgdProto

struct Whoami: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show your profile: your id, email and name, and your patient record, if any.")
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        try await connection.run { client in
            let profile = try await client.memberships.getProfile(options: connection.callOptions)
            if connection.output != .table { return try Output.emit(profile, connection.output) }
            var fields = [("id", profile.id), ("email", profile.email), ("name", "\(profile.firstName) \(profile.lastName)")]
            if profile.hasPatient { fields.append(("patient", profile.patient.id)) }
            Output.fields(fields)
        }
    }
}

struct My: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "What you belong to.", subcommands: [Orgs.self])

    struct Orgs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The organisations you belong to, as staff and as a patient.")
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            try await connection.run { client in
                let response = try await client.memberships.listMyOrganizations(options: connection.callOptions)
                if connection.output != .table { return try Output.emit(response, connection.output) }
                let rows = response.asStaff.map { [$0.organizationID, $0.name, "staff", Names.roles($0.roles), "\($0.isPrimary)"] }
                    + response.asPatient.map { [$0.organizationID, $0.name, "patient", "-", "\($0.isPrimary)"] }
                Output.table(["ORGANIZATION", "NAME", "AS", "ROLES", "PRIMARY"], rows)
                print("landing organisation: \(response.primaryOrganizationID.isEmpty ? "none" : response.primaryOrganizationID)")
            }
        }
    }
}

struct Fhir: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "FHIR R4 views of orgd's data.", subcommands: [Export.self])

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print an organisation as a FHIR R4 JSON Bundle (admin).")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Organisation id.") var id: String

        func run() async throws {
            var request = Orgd_V1_ExportOrganizationFhirRequest()
            request.id = id
            try await connection.run { client in
                let bundle = try await client.organizations.exportOrganizationFhir(request, options: connection.callOptions).bundleJson
                // The Bundle is the answer, in orgctl's one JSON style (or YAML).
                let object = try JSONSerialization.jsonObject(with: Data(bundle.utf8))
                try Output.emit(object: object, connection.output == .yaml ? .yaml : .json)
            }
        }
    }
}
