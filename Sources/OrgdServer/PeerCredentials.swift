#if canImport(Glibc)
import Glibc
#endif
import NIOCore

/// The process on the other end of a Unix socket (SO_PEERCRED), for logs.
struct PeerCredentials: CustomStringConvertible {
    var pid: Int32
    var uid: UInt32
    var gid: UInt32

    var description: String { "pid=\(pid) uid=\(uid) gid=\(gid)" }

    /// Linux's `struct ucred`, which Glibc's module map hides behind _GNU_SOURCE.
    private struct RawCredentials: Sendable {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        var gid: UInt32 = 0
    }

    /// Reads the credentials; must be called on the channel's event loop.
    static func read(from channel: Channel) -> PeerCredentials? {
        #if os(Linux)
        guard let provider = channel as? SocketOptionProvider else { return nil }
        let future: EventLoopFuture<RawCredentials> = provider.unsafeGetSocketOption(
            level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED)
        )
        var result: PeerCredentials?
        future.assumeIsolated().whenSuccess { credentials in
            result = PeerCredentials(pid: credentials.pid, uid: credentials.uid, gid: credentials.gid)
        }
        return result
        #else
        return nil
        #endif
    }
}
