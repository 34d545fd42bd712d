import ArgumentParser
import OrgdClient
import OrgdProto

struct Patient: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, read, change and list patient records (admin; a patient may read their own).",
        subcommands: [Create.self, Get.self, Update.self, List.self]
    )

    static func show(_ patient: Orgd_V1_Patient, format: OutputFormat) throws {
        if format != .table { return try Output.emit(patient, format) }
        Output.fields([
            ("id", patient.id), ("name", "\(patient.title) \(patient.givenName) \(patient.familyName)".trimmingCharacters(in: .whitespaces)),
            ("user", patient.userID.isEmpty ? "-" : patient.userID), ("version", "\(patient.version)"),
        ])
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a patient record.")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Title, e.g. Mr or Dr.") var title: String = ""
        @Option(help: "Given name.") var givenName: String
        @Option(help: "Family name.") var familyName: String
        @Option(help: "The user who logs in as this patient.") var user: String?

        func run() async throws {
            var request = Orgd_V1_CreatePatientRequest()
            request.title = title
            request.givenName = givenName
            request.familyName = familyName
            request.userID = user ?? ""
            try await connection.run { client in
                try Patient.show(try await client.memberships.createPatient(request, options: connection.callOptions), format: connection.output)
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a patient record.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Patient record id.") var id: String

        func run() async throws {
            var request = Orgd_V1_GetPatientRequest()
            request.id = id
            try await connection.run { client in
                try Patient.show(try await client.memberships.getPatient(request, options: connection.callOptions), format: connection.output)
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change named fields; needs the version you read.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Patient record id.") var id: String
        @Option(help: "The version you read: refused with ABORTED if it has changed since.") var version: Int64
        @Option(help: "Title, e.g. Mr or Dr.") var title: String?
        @Option(help: "Given name.") var givenName: String?
        @Option(help: "Family name.") var familyName: String?
        @Option(help: "Link to this user.") var user: String?
        @Flag(help: "Unlink the user.") var removeUser = false

        func run() async throws {
            var request = Orgd_V1_UpdatePatientRequest()
            request.id = id
            request.version = version
            if let title { request.title = title }
            if let givenName { request.givenName = givenName }
            if let familyName { request.familyName = familyName }
            if let user { request.userID = user }
            request.removeUserID = removeUser
            try await connection.run { client in
                try Patient.show(try await client.memberships.updatePatient(request, options: connection.callOptions), format: connection.output)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List patient records in creation order.")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Only patients whose family name begins so (any case).") var familyNamePrefix: String = ""
        @Option(help: "At most this many per page (0: the server's default).") var pageSize: Int32 = 0
        @Option(help: "The page after the one that printed this token (next_page_token).") var pageToken: String = ""

        func run() async throws {
            var request = Orgd_V1_ListPatientsRequest()
            request.familyNamePrefix = familyNamePrefix
            request.pageSize = pageSize
            request.pageToken = pageToken
            try await connection.run { client in
                let response = try await client.memberships.listPatients(request, options: connection.callOptions)
                if connection.output != .table { return try Output.emit(response, connection.output) }
                Output.table(["ID", "NAME", "USER"], response.patients.map {
                    [$0.id, "\($0.givenName) \($0.familyName)", $0.userID.isEmpty ? "-" : $0.userID]
                })
                if !response.nextPageToken.isEmpty { print("next page: --page-token \(response.nextPageToken)") }
            }
        }
    }
}
