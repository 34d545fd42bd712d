#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NIOCore
import NIOPosix

/// Getting a Unix socket path ready to bind.
enum UnixSocketFile {
    struct InUse: Error, CustomStringConvertible {
        var path: String
        var description: String { "another server is already answering on \(path)" }
    }

    struct NotASocket: Error, CustomStringConvertible {
        var path: String
        var description: String { "\(path) exists and is not a socket; refusing to replace it" }
    }

    struct BindFailed: Error, CustomStringConvertible {
        var path: String
        var reason: String
        var description: String { "cannot create the socket \(path): \(reason)" }
    }

    /// Binds a socket that nobody else can reach before it has `mode`.
    ///
    /// The socket is bound inside a fresh 0700 directory beside `path`, given
    /// its permissions there, and then renamed into place, which is atomic.
    /// (Narrowing the umask instead would race with every other thread of the
    /// process that creates files.)
    static func bindPrivately(path: String, mode: UInt16, bind: (String) async throws -> Channel) async throws -> Channel {
        let directory = (path as NSString).deletingLastPathComponent
        var template = Array("\(directory.isEmpty ? "." : directory)/.orgd-bind-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else {
            throw BindFailed(path: path, reason: "cannot create a private directory beside it (errno \(errno))")
        }
        let privateDirectory = String(cString: created)
        let privatePath = privateDirectory + "/s"
        defer { rmdir(privateDirectory) }
        let channel = try await bind(privatePath)
        guard chmod(privatePath, mode_t(mode)) == 0, rename(privatePath, path) == 0 else {
            let reason = "errno \(errno)"
            unlink(privatePath)
            try? await channel.close()
            throw BindFailed(path: path, reason: reason)
        }
        return channel
    }

    /// Removes a stale socket file left by a daemon that died, but refuses
    /// when a live server answers on it or when the path is not a socket.
    static func prepare(path: String, group: any EventLoopGroup) async throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard (info.st_mode & S_IFMT) == S_IFSOCK else { throw NotASocket(path: path) }
        let live = try? await ClientBootstrap(group: group)
            .connectTimeout(.seconds(1))
            .connect(unixDomainSocketPath: path).get()
        if let live {
            try? await live.close()
            throw InUse(path: path)
        }
        unlink(path)
    }
}
