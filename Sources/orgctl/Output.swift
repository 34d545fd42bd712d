import Foundation
import OrgdProto
import SwiftProtobuf

/// Printing results: aligned tables for people, JSON for scripts.
enum Output {
    static func json(_ message: some SwiftProtobuf.Message) throws {
        var options = JSONEncodingOptions()
        options.preserveProtoFieldNames = true
        print(try message.jsonString(options: options))
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
