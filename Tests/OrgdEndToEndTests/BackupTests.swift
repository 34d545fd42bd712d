import Foundation
import NIOConcurrencyHelpers
import OrgdClient
import OrgdProto
import Testing

/// `orgctl backup` against a running orgd, and the restore the README
/// describes: a new orgd started on the copy serves what was acknowledged
/// before the copy began.
@Suite("Online backup")
struct BackupTests {
    @Test("orgctl backup while writes run: the copy passes its integrity check, is the owner's alone, and a new orgd on it has every organisation acknowledged before the copy began and only acknowledged ones")
    func backupWhileWriting() async throws {
        let directory = try TestDaemon.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let daemon = try DaemonProcess(directory: directory, arguments: ["--database", directory + "/orgd.sqlite", "--socket", directory + "/s"])
        _ = try await daemon.waitUntilListening(count: 1)
        let client = try await OrgdClient.connect(to: .unix(path: directory + "/s"))

        let acknowledged = NIOLockedValueBox<[String]>([])
        func create(_ name: String) async throws {
            var request = Orgd_V1_CreateOrganizationRequest()
            request.name = name
            request.type = .hospitalTeam
            _ = try await client.organizations.createOrganization(request)
            acknowledged.withLockedValue { $0.append(name) }
        }
        for index in 0..<20 { try await create("before \(index)") }
        let stop = NIOLockedValueBox(false)
        let writers = (0..<4).map { writer in
            Task {
                var index = 0
                while !stop.withLockedValue({ $0 }) {
                    try await create("during \(writer).\(index)")
                    index += 1
                }
            }
        }
        try await Task.sleep(for: .milliseconds(100))
        let before = Set(acknowledged.withLockedValue { $0 })
        let backup = try await Subprocess.run("orgctl", ["backup", "--database", directory + "/orgd.sqlite", "--to", directory + "/copy.sqlite"])
        try await Task.sleep(for: .milliseconds(100))
        stop.withLockedValue { $0 = true }
        for writer in writers { try await writer.value }
        let all = Set(acknowledged.withLockedValue { $0 })
        await client.close()
        #expect(try await daemon.stop() == 0)

        #expect(backup.status == 0, "\(backup.stdout)\(backup.stderr)")
        #expect(backup.stdout.contains("integrity ok"), "\(backup.stdout)")
        let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/copy.sqlite")
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600, "\(attributes)")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.contains("partial") }
        #expect(leftovers.isEmpty, "\(leftovers)")

        // Restore as the README says: a daemon on the copy.
        let restored = try DaemonProcess(directory: directory, arguments: ["--database", directory + "/copy.sqlite", "--socket", directory + "/r"])
        _ = try await restored.waitUntilListening(count: 1)
        let reader = try await OrgdClient.connect(to: .unix(path: directory + "/r"))
        var names: Set<String> = []
        var request = Orgd_V1_ListOrganizationsRequest()
        request.pageSize = 500
        repeat {
            let page = try await reader.organizations.listOrganizations(request)
            names.formUnion(page.organizations.map(\.name))
            request.pageToken = page.nextPageToken
        } while !request.pageToken.isEmpty
        await reader.close()
        #expect(try await restored.stop() == 0)

        #expect(before.count >= 20 && all.count > before.count, "\(before.count) before, \(all.count) in all: the writes ran during the copy")
        #expect(before.isSubset(of: names), "missing from the copy: \(before.subtracting(names).sorted().prefix(5))")
        #expect(names.isSubset(of: all), "in the copy but never acknowledged: \(names.subtracting(all).sorted().prefix(5))")
    }

    @Test("orgctl backup refuses, in one line and without writing anything: an existing destination, a missing database, a file that is not an orgd database, and a PostgreSQL URL (pointing to pg_dump)")
    func refusals() async throws {
        let directory = try TestDaemon.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let daemon = try DaemonProcess(directory: directory, arguments: ["--database", directory + "/orgd.sqlite", "--socket", directory + "/s"])
        _ = try await daemon.waitUntilListening(count: 1)
        #expect(try await daemon.stop() == 0)

        let existing = directory + "/existing"
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: existing))
        let replaced = try await Subprocess.run("orgctl", ["backup", "--database", directory + "/orgd.sqlite", "--to", existing])
        #expect(replaced.status == 1 && replaced.stderr.contains("exists"), "\(replaced.status) \(replaced.stderr)")
        #expect(try String(contentsOfFile: existing, encoding: .utf8) == "keep me")

        let missing = try await Subprocess.run("orgctl", ["backup", "--database", directory + "/nothing.sqlite", "--to", directory + "/a"])
        #expect(missing.status == 1 && missing.stderr.contains("no database at \(directory)/nothing.sqlite"), "\(missing.status) \(missing.stderr)")

        let notDatabase = directory + "/notes.txt"
        try Data(String(repeating: "not SQLite ", count: 100).utf8).write(to: URL(fileURLWithPath: notDatabase))
        let garbage = try await Subprocess.run("orgctl", ["backup", "--database", notDatabase, "--to", directory + "/b"])
        #expect(garbage.status == 1 && garbage.stderr.hasPrefix("orgctl: "), "\(garbage.status) \(garbage.stderr)")
        #expect(garbage.stderr.split(separator: "\n").count == 1, "\(garbage.stderr)")

        let postgres = try await Subprocess.run("orgctl", ["backup", "--database", "postgresql://orgd@/orgd", "--to", directory + "/c"])
        #expect(postgres.status == 64 && postgres.stderr.contains("pg_dump"), "\(postgres.status) \(postgres.stderr)")

        let written = try FileManager.default.contentsOfDirectory(atPath: directory).filter { ["a", "b", "c"].contains($0) || $0.contains("partial") }
        #expect(written.isEmpty, "\(written)")
    }
}
