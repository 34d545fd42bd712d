import Foundation
import Logging

/// How log entries are written to standard error.
enum DaemonLogFormat: String, Sendable {
    /// swift-log's line for people: time, level, label, metadata, message.
    case text
    /// One JSON object per line, for log shippers: `time` (RFC 3339, UTC,
    /// microseconds), `level`, `label`, `message`, `source`, then each
    /// metadata key of the entry (`rpc.method`, `connection.peer`, …) as a
    /// field of its own; nested metadata stays nested.
    case json
}

/// Standard error, at the daemon's current level, in the chosen format.
struct DaemonLogHandler: LogHandler {
    private var inner: StreamLogHandler
    private let format: DaemonLogFormat
    private let label: String
    private var own: Logger.Level?

    init(label: String, format: DaemonLogFormat) {
        inner = StreamLogHandler.standardError(label: label)
        inner.logLevel = .trace  // the level is decided here, not there
        self.format = format
        self.label = label
    }

    var logLevel: Logger.Level {
        get { own ?? DaemonLogLevel.current.withLockedValue { $0 } }
        set { own = newValue }
    }

    var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { inner.metadataProvider }
        set { inner.metadataProvider = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        switch format {
        case .text:
            inner.log(event: event)
        case .json:
            // The handler's metadata, then its provider's, then the entry's:
            // the later wins, as in swift-log's own handler.
            var merged = inner.metadata
            if let provided = inner.metadataProvider?.get() { merged.merge(provided) { $1 } }
            if let own = event.metadata { merged.merge(own) { $1 } }
            var line = JSONLogLine()
            line.field("time", JSONLogLine.timestamp(Date()))
            line.field("level", event.level.rawValue)
            line.field("label", label)
            line.field("message", event.message.description)
            line.field("source", event.source)
            for key in merged.keys.sorted() where !JSONLogLine.reserved.contains(key) {
                line.field(key, merged[key]!)
            }
            line.write()
        }
    }
}

/// One JSON object on one line, written by hand: entries are short and the
/// log path should not allocate an encoder per entry.
struct JSONLogLine {
    static let reserved: Set<String> = ["time", "level", "label", "message", "source"]
    private var text = "{"

    mutating func field(_ key: String, _ value: String) {
        separate(key)
        Self.quote(value, into: &text)
    }

    mutating func field(_ key: String, _ value: Logger.Metadata.Value) {
        separate(key)
        Self.append(value, into: &text)
    }

    /// The line, newline-terminated, in one write(2): concurrent entries
    /// never interleave within a line.
    func write() {
        FileHandle.standardError.write(Data((text + "}\n").utf8))
    }

    var object: String { text + "}" }

    private mutating func separate(_ key: String) {
        if text.count > 1 { text += "," }
        Self.quote(key, into: &text)
        text += ":"
    }

    private static func append(_ value: Logger.Metadata.Value, into text: inout String) {
        switch value {
        case .string(let string): quote(string, into: &text)
        case .stringConvertible(let convertible): quote(convertible.description, into: &text)
        case .array(let values):
            text += "["
            for (index, element) in values.enumerated() {
                if index > 0 { text += "," }
                append(element, into: &text)
            }
            text += "]"
        case .dictionary(let dictionary):
            text += "{"
            for (index, key) in dictionary.keys.sorted().enumerated() {
                if index > 0 { text += "," }
                quote(key, into: &text)
                text += ":"
                append(dictionary[key]!, into: &text)
            }
            text += "}"
        }
    }

    /// A JSON string: quotes, backslashes and control characters escaped
    /// (RFC 8259 §7); everything else as it is, in UTF-8.
    static func quote(_ string: String, into text: inout String) {
        text += "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": text += "\\\""
            case "\\": text += "\\\\"
            case "\n": text += "\\n"
            case "\r": text += "\\r"
            case "\t": text += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                text += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: text.unicodeScalars.append(scalar)
            }
        }
        text += "\""
    }

    /// `2026-12-03T19:42:07.123456Z`.
    static func timestamp(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        let micros = Int((date.timeIntervalSince1970 - Double(seconds)) * 1_000_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        let micro = String(micros)
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))."
            + String(repeating: "0", count: 6 - micro.count) + micro + "Z"
    }
}
