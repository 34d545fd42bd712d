import ArgumentParser
import Foundation
import GRDB

/// An online, consistent copy of a SQLite database orgd is serving.
struct Backup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy orgd's SQLite database while it runs: a consistent, compact snapshot (VACUUM INTO).",
        discussion: """
            Reads the database file directly (run it as a user who may read it, on the same machine):
            one read transaction, so writes that orgd commits meanwhile are either all in the copy or
            not at all, and orgd is never blocked. The copy (mode 0600) is written beside FILE, synced, checked
            (PRAGMA integrity_check) and only then renamed to FILE; an existing FILE is never replaced.
            To restore: stop orgd, move the copy over the database file, remove its -wal and -shm files,
            start orgd. Over PostgreSQL use pg_dump instead (see the README).
            """)

    @Option(help: "The database orgd serves [ORGD_DATABASE] (default: ./orgd.sqlite, orgd's default).")
    var database: String?

    @Option(help: "Where to write the copy; must not exist yet.")
    var to: String

    func run() throws {
        do {
            try copy()
        } catch let failure as BackupFailure {
            FileHandle.standardError.write(Data("orgctl: \(failure.message)\n".utf8))
            throw ExitCode(1)
        }
    }

    private func copy() throws {
        let source = database ?? ProcessInfo.processInfo.environment["ORGD_DATABASE"].flatMap { $0.isEmpty ? nil : $0 } ?? "orgd.sqlite"
        if source.hasPrefix("postgres://") || source.hasPrefix("postgresql://") {
            throw ValidationError("orgctl backup copies a SQLite database; for PostgreSQL use pg_dump (see the README)")
        }
        let manager = FileManager.default
        guard manager.fileExists(atPath: source) else {
            throw BackupFailure("no database at \(source)")
        }
        guard !manager.fileExists(atPath: to) else {
            throw BackupFailure("\(to) exists; the backup never replaces a file")
        }
        let destination = URL(fileURLWithPath: to)
        let partial = destination.deletingLastPathComponent()
            .appendingPathComponent(".\(destination.lastPathComponent).partial-\(getpid())").path
        defer { try? manager.removeItem(atPath: partial) }
        // An empty file of the owner's alone: VACUUM INTO fills it, and the
        // copy of patients' data is never readable by others, even briefly.
        let created = open(partial, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard created >= 0 else { throw BackupFailure("cannot create \(partial): \(String(cString: strerror(errno)))") }
        close(created)

        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(10)
        let copied: (bytes: Int64, tables: Int)
        do {
            let queue = try DatabaseQueue(path: source, configuration: configuration)
            try queue.inDatabase { db in
                guard try db.tableExists("grdb_migrations") || db.tableExists("organizations") else {
                    throw BackupFailure("\(source) is not an orgd database")
                }
                try db.execute(sql: "VACUUM INTO ?", arguments: [partial])
            }
            try queue.close()
            copied = try Self.check(partial)
        } catch let error as DatabaseError {
            throw BackupFailure("cannot copy \(source) to \(to): \(error.message ?? "\(error.resultCode)")")
        }
        try Self.sync(path: partial)
        // link(2) fails if `to` appeared meanwhile: never replace a file.
        guard link(partial, to) == 0 else {
            throw BackupFailure("cannot create \(to): \(String(cString: strerror(errno)))")
        }
        try Self.sync(path: destination.deletingLastPathComponent().path)
        print("\(to): \(copied.bytes) bytes, \(copied.tables) tables, integrity ok")
    }

    /// Opens the copy on its own and asks SQLite to check every page.
    private static func check(_ path: String) throws -> (bytes: Int64, tables: Int) {
        var configuration = Configuration()
        configuration.readonly = true
        let copy = try DatabaseQueue(path: path, configuration: configuration)
        defer { try? copy.close() }
        return try copy.read { db in
            let result = try String.fetchAll(db, sql: "PRAGMA integrity_check")
            guard result == ["ok"] else {
                throw BackupFailure("the copy failed its integrity check: \(result.prefix(3).joined(separator: "; "))")
            }
            let tables = try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master WHERE type = 'table'") ?? 0
            let pages = try Int64.fetchOne(db, sql: "PRAGMA page_count") ?? 0
            let size = try Int64.fetchOne(db, sql: "PRAGMA page_size") ?? 0
            return (pages * size, tables)
        }
    }

    private static func sync(path: String) throws {
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0, fsync(descriptor) == 0 else {
            let reason = String(cString: strerror(errno))
            if descriptor >= 0 { close(descriptor) }
            throw BackupFailure("cannot sync \(path): \(reason)")
        }
        close(descriptor)
    }
}

private struct BackupFailure: Error {
    let message: String
    init(_ message: String) { self.message = message }
}
