import Foundation
import Logging
import NIOConcurrencyHelpers
import OrgdCore

/// The files behind an open database, to notice when they are deleted or
/// replaced under a running orgd. SQLite keeps writing to the file it
/// opened even after its name is gone, so without this every later commit
/// would be acknowledged and then lost at the next start.
///
/// `problem()` stats the paths and compares them with what was opened
/// (device and inode): a few microseconds, done before and after every group
/// commit and on every health check. Once lost, always lost: orgd must be
/// restarted.
final class DatabaseFiles: Sendable {
    struct Identity: Equatable, Sendable {
        var device: UInt64
        var inode: UInt64
    }

    let path: String
    private let database: Identity?
    private let wal: Identity?
    private let lost = NIOLockedValueBox<String?>(nil)
    private let logger: Logger

    /// Records the files as they are now: call once the database is open and
    /// its WAL exists. A path that is not a file (`:memory:`, "") is not watched.
    init(path: String, logger: Logger) {
        self.path = path
        self.logger = logger
        database = Self.identity(path)
        wal = database == nil ? nil : Self.identity(path + "-wal")
    }

    static func identity(_ path: String) -> Identity? {
        var info = stat()
        guard !path.isEmpty, stat(path, &info) == 0 else { return nil }
        return Identity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }

    /// Nil while the files are the ones opened; else what happened to them.
    func problem() -> String? {
        if let known = lost.withLockedValue({ $0 }) { return known }
        guard let database else { return nil }
        let reason: String
        if let now = Self.identity(path) {
            if now == database {
                guard let wal, Self.identity(path + "-wal") != wal else { return nil }
                reason = "the database's write-ahead log \(path)-wal was deleted or replaced while orgd was running"
            } else {
                reason = "the database file \(path) was replaced while orgd was running"
            }
        } else {
            reason = "the database file \(path) was deleted while orgd was running"
        }
        let first = lost.withLockedValue { lost in
            defer { if lost == nil { lost = reason } }
            return lost == nil
        }
        if first {
            logger.critical("\(reason): writes are refused from now on (none is acknowledged) and health is NOT_SERVING; restart orgd", metadata: ["store.path": "\(path)"])
        }
        return reason
    }

    static func error(_ problem: String) -> RPCError {
        RPCError(.unavailable, "\(problem); writes are refused and nothing was saved: restart orgd")
    }
}

/// An exclusive lock on `<database>.lock`, held for the life of the process,
/// so that a second orgd on the same database refuses to start instead of
/// sharing (and, with its own WAL bookkeeping, corrupting) the file.
public final class DatabaseLock: Sendable {
    public let path: String
    private let descriptor: Int32

    public struct Held: Error, CustomStringConvertible, LocalizedError {
        public var description: String
        public var errorDescription: String? { description }
    }

    /// Takes the lock, or throws `Held` naming the file and, when it is
    /// known, the pid of the process that holds it.
    public init(databasePath: String) throws {
        path = databasePath + ".lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw Held(description: "cannot open the lock file \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno
            var buffer = [UInt8](repeating: 0, count: 32)
            let count = read(fd, &buffer, buffer.count)
            close(fd)
            guard reason == EWOULDBLOCK else {
                throw Held(description: "cannot lock \(path): \(String(cString: strerror(reason)))")
            }
            let pid = count > 0 ? String(decoding: buffer.prefix(count), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : ""
            let holder = Int(pid).map { "another orgd (pid \($0))" } ?? "another orgd"
            throw Held(description: "\(holder) is already using the database \(databasePath) (it holds the lock \(path)); stop it first, or give this one another --database")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        descriptor = fd
    }

    deinit {
        close(descriptor)
    }
}
