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
            return tls("\(error)")
        case let error as BoringSSLError:
            return tls("\(error)")
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

    /// BoringSSL's reasons (`…:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED at
    /// /…/handshake.cc:393`) by their names, with what to do for the usual ones.
    static func tls(_ text: String) -> String {
        let names = text.matches(of: /OPENSSL_internal:([A-Z0-9_]+)/).map { String($0.output.1) }
        guard !names.isEmpty else { return scrubbed(text) }
        let advice: [String: String] = [
            "TLSV1_ALERT_CERTIFICATE_REQUIRED": "orgd requires a client certificate: give --tls-cert and --tls-key",
            "CERTIFICATE_VERIFY_FAILED": "orgd's certificate is not signed by a CA this client trusts: give --tls-ca",
            "WRONG_VERSION_NUMBER": "the other end does not speak TLS (is this orgd's TLS port?)",
            "TLSV1_ALERT_UNKNOWN_CA": "orgd does not trust the CA of this client certificate",
        ]
        let unique = names.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        return "TLS: " + unique.map { name in advice[name].map { "\($0) (\(name))" } ?? name }.joined(separator: "; ")
    }

    /// BoringSSL's messages name the source file and line that raised them
    /// (`… at /home/build/…/handshake.cc:393`): of no use to the reader.
    static func scrubbed(_ text: String) -> String {
        text.replacingOccurrences(of: #"\s*(at\s+)?/[^\s:\]\)]+\.(cc|c|h|swift):\d+"#, with: "", options: .regularExpression)
    }
}
