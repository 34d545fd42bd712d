import ArgumentParser
import OrgdClient
import OrgdProto

struct Org: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, read, change and list organisations (admin only).",
        subcommands: [Create.self, Get.self, List.self, Update.self, Deactivate.self, Reactivate.self]
    )

    static let typeNames: [String: Orgd_V1_OrganizationType] = [
        "hospital_team": .hospitalTeam, "gp_practice": .gpPractice, "private_clinic": .privateClinic,
        "department": .department, "teaching_establishment": .teachingEstablishment,
    ]

    static func parseType(_ name: String) throws -> Orgd_V1_OrganizationType {
        try Names.parse(name, in: typeNames, option: "--type")
    }

    static func typeName(_ type: Orgd_V1_OrganizationType) -> String {
        typeNames.first { $0.value == type }?.key ?? "unspecified"
    }

    static func identifier(_ text: String) throws -> Orgd_V1_Identifier {
        let parts = text.split(separator: "|", maxSplits: 1)
        guard parts.count == 2 else { throw ValidationError("--identifier must be SYSTEM|VALUE, e.g. https://fhir.nhs.uk/Id/ods-organization-code|A81001") }
        var identifier = Orgd_V1_Identifier()
        identifier.system = String(parts[0])
        identifier.value = String(parts[1])
        return identifier
    }

    static func show(_ organization: Orgd_V1_Organization, format: OutputFormat) throws {
        if format != .table { return try Output.emit(organization, format) }
        Output.fields([
            ("id", organization.id), ("name", organization.name), ("type", typeName(organization.type)),
            ("identifier", organization.hasIdentifier ? "\(organization.identifier.system)|\(organization.identifier.value)" : "-"),
            ("active", "\(organization.active)"), ("version", "\(organization.version)"),
            ("created", Output.time(organization.createTime)), ("updated", Output.time(organization.updateTime)),
        ])
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an organisation.")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Name, 1 to 200 characters.") var name: String
        @Option(help: "hospital_team, gp_practice, private_clinic, department or teaching_establishment.", completion: Names.completion(Org.typeNames)) var type: String
        @Option(help: "External identifier as SYSTEM|VALUE.") var identifier: String?
        @Option(help: "Idempotency key: repeating the command with it creates once.") var idempotencyKey: String?

        func run() async throws {
            var request = Orgd_V1_CreateOrganizationRequest()
            request.name = name
            request.type = try Org.parseType(type)
            if let identifier { request.identifier = try Org.identifier(identifier) }
            var options = connection.callOptions
            options.idempotencyKey = idempotencyKey
            try await connection.run { client in
                try Org.show(try await client.organizations.createOrganization(request, options: options), format: connection.output)
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an organisation with its member counts.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Organisation id.") var id: String

        func run() async throws {
            var request = Orgd_V1_GetOrganizationRequest()
            request.id = id
            try await connection.run { client in
                let response = try await client.organizations.getOrganization(request, options: connection.callOptions)
                if connection.output != .table { return try Output.emit(response, connection.output) }
                try Org.show(response.organization, format: .table)
                Output.fields([("staff", "\(response.staffCount)"), ("patients", "\(response.patientCount)")])
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List organisations in creation order.")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Only this type (as for create).", completion: Names.completion(Org.typeNames)) var type: String?
        @Option(help: "Only active (true) or inactive (false) ones.") var active: Bool?
        @Option(help: "Only names starting with this (any case).") var namePrefix: String?
        @Option(help: "Page size (default 50, at most 1000).") var pageSize: Int32 = 0
        @Option(help: "Continue from this page token.") var pageToken: String?
        @Flag(help: "Follow page tokens to the end.") var all = false

        func run() async throws {
            var request = Orgd_V1_ListOrganizationsRequest()
            if let type { request.type = try Org.parseType(type) }
            if let active { request.active = active }
            request.namePrefix = namePrefix ?? ""
            request.pageSize = pageSize
            request.pageToken = pageToken ?? ""
            try await connection.run { client in
                var organizations: [Orgd_V1_Organization] = []
                var response: Orgd_V1_ListOrganizationsResponse
                repeat {
                    response = try await client.organizations.listOrganizations(request, options: connection.callOptions)
                    organizations += response.organizations
                    request.pageToken = response.nextPageToken
                } while all && !response.nextPageToken.isEmpty
                if connection.output != .table {
                    response.organizations = organizations
                    return try Output.emit(response, connection.output)
                }
                Output.table(
                    ["ID", "NAME", "TYPE", "ACTIVE", "VERSION"],
                    organizations.map { [$0.id, $0.name, Org.typeName($0.type), "\($0.active)", "\($0.version)"] }
                )
                if !response.nextPageToken.isEmpty { print("next page: --page-token \(response.nextPageToken)") }
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change named fields; needs the version you read.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Organisation id.") var id: String
        @Option(help: "The version you read (refused if someone changed it since).") var version: Int64
        @Option(help: "New name, 1 to 200 characters.") var name: String?
        @Option(help: "A new type (as for create).", completion: Names.completion(Org.typeNames)) var type: String?
        @Option(help: "New identifier as SYSTEM|VALUE.") var identifier: String?
        @Flag(help: "Remove the identifier.") var removeIdentifier = false

        func run() async throws {
            var request = Orgd_V1_UpdateOrganizationRequest()
            request.id = id
            request.version = version
            if let name { request.name = name }
            if let type { request.type = try Org.parseType(type) }
            if let identifier { request.identifier = try Org.identifier(identifier) }
            request.removeIdentifier = removeIdentifier
            try await connection.run { client in
                try Org.show(try await client.organizations.updateOrganization(request, options: connection.callOptions), format: connection.output)
            }
        }
    }

    struct Deactivate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Mark an organisation inactive (nothing is deleted).")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Organisation id.") var id: String
        @Option(help: "Refuse unless this is the current version.") var version: Int64 = 0

        func run() async throws {
            var request = Orgd_V1_DeactivateOrganizationRequest()
            request.id = id
            request.version = version
            try await connection.run { client in
                try Org.show(try await client.organizations.deactivateOrganization(request, options: connection.callOptions), format: connection.output)
            }
        }
    }

    struct Reactivate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Mark an organisation active again.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Organisation id.") var id: String
        @Option(help: "Refuse unless this is the current version.") var version: Int64 = 0

        func run() async throws {
            var request = Orgd_V1_ReactivateOrganizationRequest()
            request.id = id
            request.version = version
            try await connection.run { client in
                try Org.show(try await client.organizations.reactivateOrganization(request, options: connection.callOptions), format: connection.output)
            }
        }
    }
}
