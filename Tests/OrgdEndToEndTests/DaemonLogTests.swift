import Foundation
import Testing

/// `--log-format json` on a real orgd process, and what it logs about
/// failed calls: a refusal (UNAUTHENTICATED, PERMISSION_DENIED) at notice,
/// any other failure at debug.
@Suite("Daemon logs")
struct DaemonLogTests {
    @Test("--log-format json: one JSON object per line; a refused TCP call is logged at notice with its code and peer; a NOT_FOUND at debug")
    func jsonLines() async throws {
        let directory = try TestDaemon.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let daemon = try DaemonProcess(directory: directory, arguments: [
            "--socket", directory + "/s", "--listen", "127.0.0.1:0", "--log-format", "json", "--log-level", "debug",
        ])
        _ = try await daemon.waitUntilListening(count: 2)
        let port = try #require(daemon.tcpPort)

        let refused = try await Subprocess.run("orgctl", ["org", "list", "--address", "127.0.0.1:\(port)", "--token", "orgd_not_a_token"])
        #expect(refused.status != 0, "\(refused.stdout)\(refused.stderr)")
        #expect(try await daemon.waitForErrorOutput(containing: "call refused"))
        let missing = try await Subprocess.run("orgctl", ["org", "get", "00000000-0000-4000-8000-000000000000", "--socket", directory + "/s"])
        #expect(missing.status != 0, "\(missing.stdout)\(missing.stderr)")
        #expect(try await daemon.waitForErrorOutput(containing: "call failed"))
        #expect(try await daemon.stop() == 0)

        let lines = daemon.allErrorOutput().split(separator: "\n").map(String.init)
        #expect(lines.count >= 3)
        var objects: [[String: Any]] = []
        for line in lines {
            let parsed = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(parsed != nil, "not a JSON object: \(line)")
            if let parsed { objects.append(parsed) }
        }
        for object in objects {
            #expect(object["time"] is String && object["level"] is String && object["message"] is String && object["label"] is String,
                    "\(object)")
        }
        let refusal = try #require(objects.first { $0["message"] as? String == "call refused" })
        #expect(refusal["level"] as? String == "notice")
        #expect(refusal["rpc.code"] as? String == "UNAUTHENTICATED")
        #expect(refusal["rpc.method"] as? String == "orgd.v1.OrganizationService/ListOrganizations")
        #expect(refusal["connection.transport"] as? String == "tcp")
        #expect((refusal["connection.peer"] as? String)?.hasPrefix("127.0.0.1:") == true, "\(refusal)")
        let failure = try #require(objects.first { $0["message"] as? String == "call failed" })
        #expect(failure["level"] as? String == "debug")
        #expect(failure["rpc.code"] as? String == "NOT_FOUND")
        #expect(failure["rpc.method"] as? String == "orgd.v1.OrganizationService/GetOrganization")
    }

    @Test("A refusal is logged at the default level too (info), in text; an unknown --log-format is refused at start")
    func textAndBadFormat() async throws {
        let directory = try TestDaemon.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let daemon = try DaemonProcess(directory: directory, arguments: ["--socket", directory + "/s", "--listen", "127.0.0.1:0"])
        _ = try await daemon.waitUntilListening(count: 2)
        let port = try #require(daemon.tcpPort)
        _ = try await Subprocess.run("orgctl", ["health", "--address", "127.0.0.1:\(port)", "--token", "orgd_not_a_token"])
        _ = try await Subprocess.run("orgctl", ["org", "list", "--address", "127.0.0.1:\(port)", "--token", "orgd_not_a_token"])
        #expect(try await daemon.waitForErrorOutput(containing: "call refused"))
        #expect(try await daemon.stop() == 0)
        let text = daemon.allErrorOutput()
        #expect(text.contains("notice"), "\(text)")
        #expect(!text.hasPrefix("{"), "text is the default")

        let bad = try await Subprocess.run("orgd", ["--log-format", "xml", "--database", directory + "/x.sqlite", "--socket", "none"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("--log-format must be text or json, not xml"), "\(bad.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/x.sqlite"), Comment(rawValue: "refused before opening the database"))
    }

    @Test("A port already taken is refused at start naming the listener and the reason in plain words, for TCP, gRPC and metrics alike")
    func portTaken() async throws {
        let directory = try TestDaemon.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try DaemonProcess(directory: directory, arguments: ["--database", directory + "/a.sqlite", "--socket", directory + "/a", "--listen", "127.0.0.1:0"])
        _ = try await first.waitUntilListening(count: 2)
        let port = try #require(first.tcpPort)
        for (flag, kind) in [("--listen", "tcp"), ("--grpc-listen", "grpc"), ("--metrics-listen", "metrics")] {
            let second = try await Subprocess.run("orgd", ["--database", directory + "/b.sqlite", "--socket", directory + "/b", flag, "127.0.0.1:\(port)"])
            #expect(second.status != 0)
            #expect(second.stderr.contains("cannot listen on \(kind):127.0.0.1:\(port): address already in use"), "\(second.stderr)")
            let final = second.stderr.split(separator: "\n").last { $0.hasPrefix("Error:") } ?? ""
            #expect(final == "Error: cannot listen on \(kind):127.0.0.1:\(port): address already in use", "\(second.stderr)")
        }
        #expect(try await first.stop() == 0)
    }
}
