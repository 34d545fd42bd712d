import Foundation
import OrgdCore
import OrgdStore
import OrgdClient
import OrgdProto
import Testing

@Suite("metrics")
struct MetricsTests {
    /// The value of the first sample line that starts with `prefix`.
    static func sample(_ text: String, _ prefix: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { Double($0.split(separator: " ").last!) }
    }

    @Test("after real calls, the Prometheus endpoint counts them by method and code, with latency, connections and commits")
    func scrape() async throws {
        try await withDaemon { daemon in
            let client = try await daemon.client()
            for index in 0..<3 {
                var create = Orgd_V1_CreateOrganizationRequest()
                create.name = "Counted \(index)"
                create.type = .department
                _ = try await client.organizations.createOrganization(create)
            }
            _ = await rpcError { _ = try await client.organizations.createOrganization(.init()) }
            _ = try await client.connection.call(service: "no.Such", method: "Thing", payload: [])
            let port = try #require(daemon.bound.metricsPort)
            let result = try await Subprocess.run("orgctl", ["metrics", "--metrics-address", "127.0.0.1:\(port)"])
            #expect(result.status == 0, "\(result.stderr)")
            let text = result.stdout
            let create = #"orgd_calls_total{method="orgd.v1.OrganizationService/CreateOrganization",code="#
            #expect(Self.sample(text, create + #""OK"}"#) == 3, "\(text)")
            #expect(Self.sample(text, create + #""INVALID_ARGUMENT"}"#) == 1)
            #expect(Self.sample(text, #"orgd_calls_total{method="unknown",code="UNIMPLEMENTED"}"#) == 1)
            #expect(Self.sample(text, #"orgd_call_duration_seconds_count{method="orgd.v1.OrganizationService/CreateOrganization"}"#) == 4)
            #expect(Self.sample(text, "orgd_connections_open") == 1)
            #expect(Self.sample(text, "orgd_calls_in_flight") == 0)
            #expect((Self.sample(text, "orgd_commit_batch_size_count") ?? 0) >= 3)
            #expect((Self.sample(text, "orgd_commit_duration_seconds_count") ?? 0) >= 3)
            let filtered = try await Subprocess.run("orgctl", ["metrics", "--metrics-address", "127.0.0.1:\(port)", "--grep", "orgd_connections_open"])
            #expect(filtered.stdout.split(separator: "\n").allSatisfy { $0.contains("orgd_connections_open") })
            await client.close()
        }
    }

    /// The answer to `GET path` on the metrics listener: status line and body.
    static func get(_ port: Int, _ path: String) async throws -> (status: String, body: String) {
        let socket = try RawSocket(tcpHost: "127.0.0.1", port: port)
        try await socket.send(Array("GET \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
        let answer = try await socket.receiveAll()
        let parts = answer.components(separatedBy: "\r\n\r\n")
        return (String(parts[0].split(separator: "\r\n").first ?? ""), parts.dropFirst().joined(separator: "\r\n\r\n"))
    }

    @Test("every family has HELP and TYPE and promtool accepts the text; latency buckets start at 25 µs; process and build metrics; HTTP probes")
    func exposition() async throws {
        try await withDaemon { daemon in
            let client = try await daemon.client()
            _ = try await client.health.check()
            var create = Orgd_V1_CreateOrganizationRequest()
            create.name = "Described"
            create.type = .department
            _ = try await client.organizations.createOrganization(create)
            let port = try #require(daemon.bound.metricsPort)
            let (status, text) = try await Self.get(port, "/metrics")
            #expect(status.hasSuffix("200 OK"), "\(status)")
            let lines = text.split(separator: "\n")
            let typed = lines.filter { $0.hasPrefix("# TYPE ") }.map { $0.split(separator: " ")[2] }
            let described = Set(lines.filter { $0.hasPrefix("# HELP ") }.map { $0.split(separator: " ")[2] })
            #expect(typed.count >= 15, "\(text)")
            #expect(typed.filter { !described.contains($0) } == [], "families without HELP")

            // The first latency bucket is 25 µs.
            let buckets = lines.filter { $0.hasPrefix("orgd_call_duration_seconds_bucket{") && $0.contains("CreateOrganization") }
            let bounds = buckets.compactMap { line -> Double? in
                guard let range = line.range(of: "le=\"") else { return nil }
                return Double(line[range.upperBound...].prefix { $0 != "\"" })
            }
            #expect(bounds.first.map { abs($0 - 0.000025) < 1e-12 } == true, "\(buckets)")

            #expect(Self.sample(text, "orgd_build_info{version=\"\(OrgdBuild.version)\"") == 1, "\(text)")
            #expect((Self.sample(text, "process_resident_memory_bytes") ?? 0) > 1_000_000)
            #expect((Self.sample(text, "process_open_fds") ?? 0) > 3)
            #expect((Self.sample(text, "process_max_fds") ?? 0) >= (Self.sample(text, "process_open_fds") ?? 0))
            #expect((Self.sample(text, "process_threads") ?? 0) >= 1)
            let started = try #require(Self.sample(text, "process_start_time_seconds"))
            #expect(abs(started - Date().timeIntervalSince1970) < 3600, "the test process started within the hour")

            let promtool = "/usr/bin/promtool"
            try #require(FileManager.default.isExecutableFile(atPath: promtool), "scripts/install-deps --test installs prometheus for promtool")
            let file = daemon.directory + "/scrape.txt"
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            let checked = try await Subprocess.run("/bin/sh", ["-c", "\(promtool) check metrics < '\(file)'"])
            #expect(checked.status == 0, "promtool: \(checked.stdout) \(checked.stderr)")

            #expect(try await Self.get(port, "/healthz") == ("HTTP/1.1 200 OK", "ok\n"))
            #expect(try await Self.get(port, "/readyz") == ("HTTP/1.1 200 OK", "ready\n"))
            #expect(try await Self.get(port, "/nothing").status == "HTTP/1.1 404 Not Found")
            await client.close()
        }
    }

    @Test("orgd --version and orgctl --version name the release (and orgd the schema versions), as orgd_build_info does")
    func versions() async throws {
        let orgd = try await Subprocess.run("orgd", ["--version"])
        #expect(orgd.status == 0)
        #expect(orgd.stdout.hasPrefix("orgd \(OrgdBuild.version) (schema: SQLite v"), "\(orgd.stdout)")
        #expect(orgd.stdout.contains("PostgreSQL \(PostgresSchema.latestVersion))"))
        let orgctl = try await Subprocess.run("orgctl", ["--version"])
        #expect(orgctl.status == 0)
        #expect(orgctl.stdout == "orgctl \(OrgdBuild.version)\n")
    }
}
