import Foundation
import OrgdProto
import Testing

/// orgctl as scripts use it: options before the subcommand, `-o json|yaml|id`
/// with every field, exit statuses by status code, errors in plain words,
/// the schema compiled in (`rpc list|describe`, `call`), help everywhere.
@Suite("orgctl for scripts")
struct OrgctlScriptingTests {
    private static func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "not a JSON object: \(text)")
    }

    private static func isFalse(_ value: Any?) -> Bool {
        guard let number = value as? NSNumber else { return false }
        return String(cString: number.objCType) == "c" && !number.boolValue
    }

    @Test("Connection and output options work before the subcommand too; given again after it, the later one wins")
    func globalOptions() async throws {
        try await withDaemon { daemon in
            let socket = daemon.bound.unixSocketPath!
            let created = try await Subprocess.run("orgctl", ["--socket", socket, "-o", "id", "org", "create", "--name", "Before", "--type", "department"])
            #expect(created.status == 0, "\(created.stderr)")
            let id = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(UUID(uuidString: id) != nil, "\(created.stdout)")
            // The issue's own example: a token in the environment, --address first.
            let token = try await daemon.serviceToken(role: .admin).secret
            let tcp = try await Subprocess.run("orgctl", ["--address", "127.0.0.1:\(daemon.bound.tcpPort!)", "--timeout=5", "org", "list", "-o", "id"],
                                               environment: ["ORGD_TOKEN": token])
            #expect(tcp.status == 0 && tcp.stdout.contains(id), "\(tcp.status) \(tcp.stdout)\(tcp.stderr)")
            // After the subcommand is the more specific place: it wins.
            let overridden = try await Subprocess.run("orgctl", ["--socket", "/nonexistent.sock", "org", "get", id, "--socket", socket])
            #expect(overridden.status == 0, "\(overridden.stderr)")
            // Not a global option: refused as before, as a usage error.
            let unknown = try await Subprocess.run("orgctl", ["--page-size", "5", "org", "list", "--socket", socket])
            #expect(unknown.status == 64, "\(unknown.status) \(unknown.stderr)")
        }
    }

    @Test("-o json shows every field with its default (false, 0, \"\", []), in one style (sorted keys, two-space indents) shared by fhir export; -o yaml and -o id print the same answer")
    func outputFormats() async throws {
        try await withDaemon { daemon in
            let socket = ["--socket", daemon.bound.unixSocketPath!]
            let id = try await Subprocess.run("orgctl", ["org", "create", "--name", "Quiet Ward", "--type", "hospital_team", "-o", "id"] + socket)
                .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(try await Subprocess.run("orgctl", ["org", "deactivate", id] + socket).status == 0)

            let listed = try await Subprocess.run("orgctl", ["org", "list", "-o", "json"] + socket)
            let organizations = try #require(try Self.json(listed.stdout)["organizations"] as? [[String: Any]])
            let inactive = organizations.filter { Self.isFalse($0["active"]) }
            #expect(inactive.count == 1 && inactive.first?["id"] as? String == id, "select(.active == false) finds it: \(listed.stdout)")
            #expect(try Self.json(listed.stdout)["next_page_token"] as? String == "", "an empty string is shown")

            let none = try await Subprocess.run("orgctl", ["org", "list", "--name-prefix", "zzz", "--json"] + socket)
            #expect(none.stdout == "{\n  \"next_page_token\": \"\",\n  \"organizations\": []\n}\n", "\(none.stdout)")

            let got = try await Subprocess.run("orgctl", ["org", "get", id, "-o", "json"] + socket)
            let answer = try Self.json(got.stdout)
            #expect(answer["staff"] as? [Any] != nil && answer["staff_count"] as? String == "0", "\(got.stdout)")
            #expect(got.stdout.contains("\n  \"organization\": {\n    \"active\": false,\n"), "sorted keys, two-space indents: \(got.stdout)")

            let fhir = try await Subprocess.run("orgctl", ["fhir", "export", id] + socket)
            #expect(fhir.status == 0 && fhir.stdout.hasPrefix("{\n  \"entry\": [\n"), "\(fhir.stdout.prefix(200))")
            #expect(try Self.json(fhir.stdout)["resourceType"] as? String == "Bundle")

            let yaml = try await Subprocess.run("orgctl", ["org", "get", id, "-o", "yaml"] + socket)
            #expect(yaml.stdout.contains("organization:\n  active: false\n") && (yaml.stdout.contains("  id: \(id)\n") || yaml.stdout.contains("  id: \"\(id)\"\n"))
                    && yaml.stdout.contains("staff: []\n") && yaml.stdout.contains("staff_count: \"0\"\n"), "\(yaml.stdout)")

            // A string YAML could read as something else (one that begins with a digit) is quoted.
            let digits = try await Subprocess.run("orgctl", ["org", "create", "--name", "2024", "--type", "department", "-o", "yaml"] + socket)
            #expect(digits.stdout.contains("name: \"2024\"\n"), "\(digits.stdout)")
            let ids = try await Subprocess.run("orgctl", ["org", "list", "--active", "false", "-o", "id"] + socket)
            #expect(ids.stdout == id + "\n", "\(ids.stdout)")
            let conflicting = try await Subprocess.run("orgctl", ["org", "list", "--json", "-o", "yaml"] + socket)
            #expect(conflicting.status == 64, "\(conflicting.stderr)")
        }
    }

    @Test("Enum values are taken in their JSON spelling too; a wrong one names both spellings and exits 64")
    func enumSpellings() async throws {
        try await withDaemon { daemon in
            let socket = ["--socket", daemon.bound.unixSocketPath!]
            let made = try await Subprocess.run("orgctl", ["org", "create", "--name", "GP", "--type", "ORGANIZATION_TYPE_GP_PRACTICE", "-o", "json"] + socket)
            #expect(try Self.json(made.stdout)["type"] as? String == "ORGANIZATION_TYPE_GP_PRACTICE", "\(made.stdout)\(made.stderr)")
            let user = try await Subprocess.run("orgctl", ["user", "create", "--email", "a@example.org", "--given-name", "A", "--family-name", "B",
                                                        "--role", "SYSTEM_ROLE_ADMIN", "-o", "json"] + socket)
            #expect(try Self.json(user.stdout)["system_role"] as? String == "SYSTEM_ROLE_ADMIN", "\(user.stdout)\(user.stderr)")
            let wrong = try await Subprocess.run("orgctl", ["org", "create", "--name", "X", "--type", "gp"] + socket)
            #expect(wrong.status == 64 && wrong.stderr.contains("gp_practice") && wrong.stderr.contains("ORGANIZATION_TYPE_"), "\(wrong.stderr)")
        }
    }

    @Test("Exit statuses name the code: FAILED_PRECONDITION 19, ABORTED 20; invite bulk exits 2 when a row fails and still sends the others")
    func exitStatuses() async throws {
        try await withDaemon { daemon in
            let socket = ["--socket", daemon.bound.unixSocketPath!]
            let id = try await Subprocess.run("orgctl", ["org", "create", "--name", "Closing", "--type", "department", "-o", "id"] + socket)
                .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let stale = try await Subprocess.run("orgctl", ["org", "update", id, "--version", "7", "--name", "Y"] + socket)
            #expect(stale.status == 20 && stale.stderr.hasPrefix("orgctl: ABORTED"), "\(stale.status) \(stale.stderr)")

            let bulk = try await Subprocess.run("orgctl", ["invite", "bulk", "--org", id, "--row", "ok@example.org,Mr,Ok,Person,PKB_TEAM_PRO",
                                                        "--row", "not-an-address,Mr,Bad,Row,PKB_TEAM_PRO"] + socket)
            #expect(bulk.status == 2 && bulk.stderr.contains("1 of 2 rows"), "\(bulk.status) \(bulk.stdout)\(bulk.stderr)")
            #expect(bulk.stdout.contains("ok@example.org") && bulk.stdout.contains("sent"), "\(bulk.stdout)")

            #expect(try await Subprocess.run("orgctl", ["org", "deactivate", id] + socket).status == 0)
            let patient = try await Subprocess.run("orgctl", ["patient", "create", "--given-name", "P", "--family-name", "Q", "-o", "id"] + socket)
                .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let closed = try await Subprocess.run("orgctl", ["patient-member", "add", "--org", id, "--patient", patient] + socket)
            #expect(closed.status == 19 && closed.stderr.hasPrefix("orgctl: FAILED_PRECONDITION"), "\(closed.status) \(closed.stderr)")
        }
    }

    @Test("A connection that cannot be made is said in plain words, naming the address or path; no NIO internals")
    func connectionErrors() async throws {
        let refused = try await Subprocess.run("orgctl", ["org", "list", "--address", "127.0.0.1:1", "--token", "t"])
        #expect(refused.status == 24 && refused.stderr == "orgctl: UNAVAILABLE: cannot connect to orgd at tcp:127.0.0.1:1: connection refused (is orgd listening there: its --listen or --grpc-listen?)\n",
                "\(refused.stderr)")
        let missing = try await Subprocess.run("orgctl", ["health", "--socket", "/nonexistent/orgd.sock"])
        #expect(missing.status == 24 && missing.stderr.contains("unix:/nonexistent/orgd.sock: no such file or directory"), "\(missing.stderr)")
        let grpc = try await Subprocess.run("orgctl", ["org", "list", "--grpc", "127.0.0.1:1", "--token", "t"])
        #expect(grpc.status == 24 && grpc.stderr.contains("grpc:127.0.0.1:1") && grpc.stderr.contains("connection refused"), "\(grpc.stderr)")
        for result in [refused, missing, grpc] {
            for word in ["SingleConnectionFailure", "errno", "IPv4", "NIO"] {
                #expect(!result.stderr.contains(word), "\(result.stderr)")
            }
        }
    }

    @Test("rpc list and describe show the schema compiled in, comments included; call sends JSON to any RPC, over ttrpc and gRPC")
    func schemaAndCall() async throws {
        try await withDaemon(configure: { $0.grpcHost = "127.0.0.1" }) { daemon in
            let services = try await Subprocess.run("orgctl", ["rpc", "list"])
            for service in ["orgd.v1.OrganizationService", "orgd.v1.MembershipService", "orgd.v1.ConsentService", "orgd.v1.InvitationService",
                            "orgd.v1.TokenService", "orgd.v1.AuditService", "orgd.v1.ChangeService", "grpc.health.v1.Health"] {
                #expect(services.stdout.split(separator: "\n").contains(Substring(service)), "\(service) in \(services.stdout)")
            }
            let methods = try await Subprocess.run("orgctl", ["rpc", "list", "orgd.v1.OrganizationService"])
            #expect(methods.stdout.contains("orgd.v1.OrganizationService/GetOrganization\n"), "\(methods.stdout)")
            let enumeration = try await Subprocess.run("orgctl", ["rpc", "describe", "orgd.v1.OrganizationType"])
            #expect(enumeration.stdout.contains("// What kind of care organisation this is") && enumeration.stdout.contains("  ORGANIZATION_TYPE_HOSPITAL_TEAM = 1;"),
                    "\(enumeration.stdout)")
            let message = try await Subprocess.run("orgctl", ["rpc", "describe", "orgd.v1.ListOrganizationsRequest"])
            #expect(message.stdout.contains("  optional orgd.v1.OrganizationType type = 3;") && message.stdout.contains("  // Case-insensitive prefix of the name."),
                    "\(message.stdout)")
            let method = try await Subprocess.run("orgctl", ["rpc", "describe", "orgd.v1.OrganizationService.GetOrganization"])
            #expect(method.stdout.contains("rpc GetOrganization(orgd.v1.GetOrganizationRequest) returns (orgd.v1.GetOrganizationResponse);"), "\(method.stdout)")
            let nothing = try await Subprocess.run("orgctl", ["rpc", "describe", "orgd.v1.Nothing"])
            #expect(nothing.status == 64, "\(nothing.stderr)")

            let socket = ["--socket", daemon.bound.unixSocketPath!]
            let created = try await Subprocess.run("orgctl", ["call", "orgd.v1.OrganizationService/CreateOrganization",
                                                           "-d", #"{"name": "Called", "type": "ORGANIZATION_TYPE_DEPARTMENT"}"#] + socket)
            let organization = try Orgd_V1_Organization(jsonString: created.stdout)
            #expect(organization.name == "Called" && organization.active, "\(created.stdout)\(created.stderr)")
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("orgctl-call-\(UUID().uuidString).json")
            defer { try? FileManager.default.removeItem(at: file) }
            try Data(#"{"id": "\#(organization.id)"}"#.utf8).write(to: file)
            let token = try await daemon.serviceToken(role: .admin).secret
            let overGRPC = try await Subprocess.run("orgctl", ["--grpc", "127.0.0.1:\(daemon.grpcPort)", "--token", token,
                                                            "call", "orgd.v1.OrganizationService/GetOrganization", "-d", "@" + file.path])
            #expect(try Orgd_V1_GetOrganizationResponse(jsonString: overGRPC.stdout).organization.id == organization.id, "\(overGRPC.stdout)\(overGRPC.stderr)")
            let badJSON = try await Subprocess.run("orgctl", ["call", "orgd.v1.OrganizationService/GetOrganization", "-d", #"{"idd": 1}"#] + socket)
            #expect(badJSON.status == 64 && badJSON.stderr.contains("orgd.v1.GetOrganizationRequest"), "\(badJSON.stderr)")
            let missing = try await Subprocess.run("orgctl", ["call", "orgd.v1.OrganizationService/GetOrganization", "-d", #"{"id": "\#(UUID().uuidString)"}"#] + socket)
            #expect(missing.status == 15 && missing.stderr.hasPrefix("orgctl: NOT_FOUND"), "\(missing.stderr)")
        }
    }

    @Test("Every option and argument of orgctl and orgd has help text; --version names the version and schema")
    func helpEverywhere() async throws {
        for binary in ["orgctl", "orgd"] {
            let dump = try await Subprocess.run(binary, ["--experimental-dump-help"])
            let root = try #require(try Self.json(dump.stdout)["command"] as? [String: Any])
            var missing: [String] = []
            func walk(_ command: [String: Any], _ path: String) {
                guard command["commandName"] as? String != "help" else { return }
                for argument in command["arguments"] as? [[String: Any]] ?? [] where argument["shouldDisplay"] as? Bool ?? true {
                    if (argument["abstract"] as? String ?? "").isEmpty {
                        let names = (argument["names"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
                        missing.append("\(path) \(names.first ?? argument["valueName"] as? String ?? "?")")
                    }
                }
                for sub in command["subcommands"] as? [[String: Any]] ?? [] { walk(sub, path + " " + (sub["commandName"] as? String ?? "?")) }
            }
            walk(root, binary)
            #expect(missing.isEmpty, "options without help: \(missing)")
            let version = try await Subprocess.run(binary, ["--version"])
            #expect(version.status == 0 && version.stdout.hasPrefix(binary + " "), "\(version.stdout)")
        }
    }
}
