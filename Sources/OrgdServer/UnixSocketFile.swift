#if canImport(Glibc)
import Glibc
#endif
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
