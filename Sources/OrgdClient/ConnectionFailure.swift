import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// Why a connection could not be made, in plain words: "connection
/// refused", "no such file or directory", "timed out after 10 s" — not
/// NIO's `SingleConnectionFailure(target: [IPv4]…, error: …) (errno: 111)`,
/// and never a path of the machine that built BoringSSL.
enum ConnectionFailure {
    static func reason(_ error: Error) -> String {
        switch error {
        case let error as NIOConnectionError:
            // One attempt per resolved address; they usually fail alike.
            let reasons = error.connectionErrors.map { reason($0.error) }
            if !reasons.isEmpty { return Array(Set(reasons)).sorted().joined(separator: "; ") }
            if let dns = error.dnsAError ?? error.dnsAAAAError { return "cannot resolve \(error.host): \(reason(dns))" }
            return "cannot resolve \(error.host)"
        case let error as IOError:
            return strerror(error.errnoCode)
        case let error as ChannelError:
            if case .connectTimeout(let amount) = error { return "no answer within \(amount.nanoseconds / 1_000_000_000) s" }
            return "\(error)"
        case let error as NIOSSLError:
            return scrubbed("\(error)")
        case let error as BoringSSLError:
            return scrubbed("\(error)")
        case let error as SocketAddressError:
            if case .unknown(let host, _) = error { return "cannot resolve \(host)" }
            return "\(error)"
        default:
            return scrubbed("\(error)")
        }
    }

    /// A hint for the reason, when one helps: where to look next.
    static func hint(_ error: Error, unix: Bool) -> String {
        let errno = errnoCode(error)
        switch errno {
        case ENOENT where unix: return " (is orgd running, and is this its --socket?)"
        case ECONNREFUSED: return unix ? " (orgd is not running on this socket)" : " (is orgd listening there: its --listen or --grpc-listen?)"
        case EACCES where unix: return " (may this user open the socket? it is mode 0600 for orgd's own user, or 0660 for its group)"
        default: return ""
        }
    }

    private static func errnoCode(_ error: Error) -> CInt? {
        switch error {
        case let error as IOError: return error.errnoCode
        case let error as NIOConnectionError: return error.connectionErrors.lazy.compactMap { errnoCode($0.error) }.first
        default: return nil
        }
    }

    private static func strerror(_ code: CInt) -> String {
        String(cString: Foundation.strerror(code)).lowercased()
    }

    /// BoringSSL's messages name the source file and line that raised them
    /// (`… at /home/build/…/handshake.cc:393`): of no use to the reader.
    static func scrubbed(_ text: String) -> String {
        text.replacingOccurrences(of: #"\s*(at\s+)?/[^\s:\]\)]+\.(cc|c|h|swift):\d+"#, with: "", options: .regularExpression)
    }
}
