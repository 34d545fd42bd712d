import ArgumentParser
import Foundation
import OrgdClient
import OrgdProto
import SwiftProtobuf

/// `-o`: how an answer is printed.
enum OutputFormat: String, CaseIterable, ExpressibleByArgument {
    case table, json, yaml, id
}

/// Printing results: aligned tables for people; JSON, YAML or ids for
/// scripts — one style for every command.
enum Output {
    /// An answer in a format for scripts: JSON (every field, defaults
    /// included, keys sorted, two-space indents), YAML (the same document),
    /// or the ids it carries, one a line.
    static func emit(_ message: some SwiftProtobuf.Message, _ format: OutputFormat) throws {
        try emit(object: OrgdSchema.jsonObject(message), format)
    }

    /// A JSON document (already decoded) in `format`.
    static func emit(object: Any, _ format: OutputFormat) throws {
        switch format {
        case .table, .json:
            print(try json(object))
        case .yaml:
            print(YAML.document(object), terminator: "")
        case .id:
            let found = ids(object)
            guard !found.isEmpty else { throw ValidationError("this answer carries no id; use -o json") }
            for id in found { print(id) }
        }
    }

    /// The one JSON style: sorted keys, two-space indents, `"key": value`,
    /// `[]` and `{}` when empty (as jq prints), slashes as they are.
    static func json(_ object: Any) throws -> String {
        var out = ""
        try writeJSON(object, indent: 0, into: &out)
        return out
    }

    private static func writeJSON(_ value: Any, indent: Int, into out: inout String) throws {
        let pad = String(repeating: "  ", count: indent + 1), closing = String(repeating: "  ", count: indent)
        switch value {
        case let dictionary as [String: Any]:
            guard !dictionary.isEmpty else { out += "{}"; return }
            out += "{\n"
            for (index, key) in dictionary.keys.sorted().enumerated() {
                out += pad + (try scalarJSON(key)) + ": "
                try writeJSON(dictionary[key]!, indent: indent + 1, into: &out)
                out += index == dictionary.count - 1 ? "\n" : ",\n"
            }
            out += closing + "}"
        case let array as [Any]:
            guard !array.isEmpty else { out += "[]"; return }
            out += "[\n"
            for (index, item) in array.enumerated() {
                out += pad
                try writeJSON(item, indent: indent + 1, into: &out)
                out += index == array.count - 1 ? "\n" : ",\n"
            }
            out += closing + "]"
        default:
            out += try scalarJSON(value)
        }
    }

    private static func scalarJSON(_ value: Any) throws -> String {
        let data = try JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }

    /// The ids an answer carries: its own `id`; else the `id` of the one
    /// object it wraps (`{"organization": {...}}`); else those of the
    /// objects in its one list (`{"organizations": [...]}`), in order.
    static func ids(_ object: Any) -> [String] {
        guard let dictionary = object as? [String: Any] else { return [] }
        if let id = dictionary["id"] as? String, !id.isEmpty { return [id] }
        let nested = dictionary.values.compactMap { $0 as? [String: Any] }.compactMap { $0["id"] as? String }.filter { !$0.isEmpty }
        if nested.count == 1 { return nested }
        let lists = dictionary.values.compactMap { $0 as? [Any] }.filter { !$0.isEmpty }
        if lists.count == 1, let list = lists.first {
            return list.compactMap { ($0 as? [String: Any])?["id"] as? String }
        }
        return []
    }

    /// Prints rows under a header, each column as wide as its widest cell.
    static func table(_ header: [String], _ rows: [[String]]) {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        for row in all {
            let cells = row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }
            print(cells.joined(separator: "  "))
        }
    }

    /// Prints "key: value" lines.
    static func fields(_ pairs: [(String, String)]) {
        let width = pairs.map(\.0.count).max() ?? 0
        for (key, value) in pairs {
            print("\(key):".padding(toLength: width + 2, withPad: " ", startingAt: 0) + value)
        }
    }

    static func time(_ timestamp: Google_Protobuf_Timestamp) -> String {
        guard timestamp.seconds != 0 || timestamp.nanos != 0 else { return "-" }
        return ISO8601DateFormatter().string(from: timestamp.date)
    }
}

/// A YAML writer for JSON documents (block style, keys sorted; strings
/// quoted whenever YAML could read them as anything but that string).
enum YAML {
    static func document(_ value: Any) -> String {
        var out = ""
        write(value, indent: 0, into: &out, inline: false)
        if !out.hasSuffix("\n") { out += "\n" }
        return out
    }

    private static func write(_ value: Any, indent: Int, into out: inout String, inline: Bool) {
        let pad = String(repeating: "  ", count: indent)
        switch value {
        case let dictionary as [String: Any]:
            guard !dictionary.isEmpty else { out += (inline ? " " : pad) + "{}\n"; return }
            if inline { out += "\n" }
            for key in dictionary.keys.sorted() {
                out += pad + scalar(key) + ":"
                write(dictionary[key]!, indent: indent + 1, into: &out, inline: true)
            }
        case let array as [Any]:
            guard !array.isEmpty else { out += (inline ? " " : pad) + "[]\n"; return }
            if inline { out += "\n" }
            for item in array {
                out += pad + "-"
                if let dictionary = item as? [String: Any], !dictionary.isEmpty {
                    // The first key on the dash's line, the rest under it.
                    var nested = ""
                    write(dictionary, indent: indent + 1, into: &nested, inline: false)
                    out += " " + nested.dropFirst((indent + 1) * 2)
                } else {
                    write(item, indent: indent + 1, into: &out, inline: true)
                }
            }
        default:
            out += (inline ? " " : pad) + scalar(value) + "\n"
        }
    }

    private static func scalar(_ value: Any) -> String {
        if let number = value as? NSNumber {
            // JSONSerialization's booleans are NSNumbers of type "c".
            if String(cString: number.objCType) == "c" { return number.boolValue ? "true" : "false" }
            return "\(number)"
        }
        if value is NSNull { return "null" }
        let text = "\(value)"
        let plain = text.range(of: #"^[A-Za-z_][A-Za-z0-9_./@+-]*$"#, options: .regularExpression) != nil
            && !["true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"].contains(text.lowercased())
        if plain { return text }
        // JSON's string syntax is YAML's double-quoted style.
        let data = (try? JSONSerialization.data(withJSONObject: text, options: [.fragmentsAllowed, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}
