import Dispatch
import Foundation
import Logging
import NIOConcurrencyHelpers
import OrgdServer

/// The daemon's log level, which SIGHUP can change: every logger's handler
/// reads it at each log call, unless that logger set a level of its own.
enum DaemonLogLevel {
    static let current = NIOLockedValueBox(Logger.Level.info)

    /// A level from the first line of `path` (`debug`, `info`, …).
    static func read(_ path: String) throws -> Logger.Level {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ReloadError("cannot read the log level file \(path)")
        }
        let word = text.split(separator: "\n", omittingEmptySubsequences: false).first.map {
            $0.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        } ?? ""
        guard let level = Logger.Level(rawValue: word) else {
            throw ReloadError("the log level file \(path) says \"\(word)\", not one of trace, debug, info, notice, warning, error, critical")
        }
        return level
    }
}

struct ReloadError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// SIGHUP: the log level file (when given) and the TLS files are read
/// again; what cannot be used is logged and the old setting stays. SIGHUP
/// never stops orgd.
final class HangUpReloader {
    private let source: any DispatchSourceSignal

    init(server: OrgdServer, logLevelFile: String?, logger: Logger) {
        signal(SIGHUP, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: DispatchQueue(label: "orgd.sighup"))
        source.setEventHandler {
            logger.notice("SIGHUP: reloading")
            if let logLevelFile {
                do {
                    let level = try DaemonLogLevel.read(logLevelFile)
                    DaemonLogLevel.current.withLockedValue { $0 = level }
                    logger.notice("log level set", metadata: ["log.level": "\(level)"])
                } catch {
                    logger.error("log level kept", metadata: ["error": "\(error)", "log.level": "\(DaemonLogLevel.current.withLockedValue { $0 })"])
                }
            }
            do {
                if try server.reloadTLS() { logger.notice("TLS certificates reloaded for new connections") }
            } catch {
                logger.error("TLS certificates kept: the new files cannot be used", metadata: ["error": "\(error)"])
            }
        }
        source.resume()
        self.source = source
    }

    func cancel() { source.cancel() }
}
