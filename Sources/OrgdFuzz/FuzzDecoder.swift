// A SwiftProtobuf `Decoder` driven by fuzz bytes instead of wire bytes: the
// generated `decodeMessage` of any request type asks it for field numbers and
// then for a value of that field's exact type, so the fuzzer builds
// well-typed requests of every shape (nested messages, repeated fields, open
// enums, oneofs) without descriptors. Values come from tables of interesting
// numbers and strings (extremes, off-by-one limits, timestamps past year
// 9999, odd Unicode, the seeded store's ids) or straight from the input.
import Foundation
import SwiftProtobuf

/// The fuzz input as a stream; reads past the end give nil.
struct FuzzBytes {
    let bytes: [UInt8]
    var index = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { index >= bytes.count }

    mutating func next() -> UInt8? {
        guard index < bytes.count else { return nil }
        defer { index += 1 }
        return bytes[index]
    }

    mutating func byte() -> UInt8 { next() ?? 0 }

    mutating func take(_ count: Int) -> [UInt8] {
        let end = min(bytes.count, index + count)
        defer { index = end }
        return Array(bytes[index..<end])
    }

    /// The rest of the input.
    mutating func rest() -> [UInt8] { take(bytes.count) }

    mutating func integer<T: FixedWidthInteger>(_: T.Type) -> T {
        var value: T = 0
        for byte in take(MemoryLayout<T>.size) { value = value << 8 | T(truncatingIfNeeded: byte) }
        return value
    }
}

/// Values worth trying, by type.
enum Interesting {
    static let int64: [Int64] = [
        0, 1, -1, 2, 7, 30, 31, 100, 1000, 1001,
        Int64.max, Int64.min, Int64.max - 1, Int64.min + 1,
        10_000_000_000_000, -10_000_000_000_000, 1_000_000_000_000, -1_000_000_000_000,
        // The edges of google.protobuf.Timestamp (0001-01-01 … 9999-12-31).
        253_402_300_799, 253_402_300_800, -62_135_596_800, -62_135_596_801,
        // Around now, and where seconds × 10^6 leaves Int64.
        1_800_000_000, 1_700_000_000, 9_223_372_036_854, 9_223_372_036_855, -9_223_372_036_855,
        1 << 31, 1 << 32, 1 << 53, (1 << 53) + 1, 1_000_000_000_000_000,
        Int64(Int32.max), Int64(Int32.min), Int64(Int32.max) + 1,
    ]
    static let int32: [Int32] = [
        0, 1, -1, 2, 7, 30, 31, 50, 100, 101, 500, 501, 1000, 1001, 10_000, 86_400, 604_800,
        Int32.max, Int32.min, Int32.max - 1, Int32.min + 1,
        999_999_999, 1_000_000_000, -999_999_999, -1_000_000_000,
    ]
    static let double: [Double] = [
        0, -0.0, 1, -1, .nan, .infinity, -.infinity, .greatestFiniteMagnitude, .leastNonzeroMagnitude,
        1e13, -1e13, 9.3e18, -9.3e18,
    ]
    static let enumRaw: [Int] = [0, 1, 2, 3, 4, 5, -1, Int(Int32.max), Int(Int32.min), 99]

    /// Strings that are not any seeded id: empty, huge, odd Unicode,
    /// syntax from SQL and LIKE patterns, lengths around common limits.
    static let strings: [String] = [
        "", " ", "  ", "\t", "\r\n", "\0", "a\0b", "\u{7F}",
        "e\u{301}", "\u{202E}evil", "\u{FEFF}", "\u{200B}", "İ", "ß", "ﬃ", "Ａ", "\u{10FFFF}", "\u{FFFD}",
        "👩‍⚕️", "🏳️‍🌈", "עברית", "ελληνικά", "日本語", "Zalgo\u{336}\u{337}\u{338}",
        "%", "_", "%_%", "'", "\"", "\\", "' OR 1=1 --", "'); DROP TABLE users; --", "null", "NULL", "0", "-1",
        "a@b.co", "A@B.CO", "user@example.org", "@", "a@", "@b.co", "a@b", "a@1.2.3.4", "a@-b.co",
        "agent", "membership_manager", "AGENT", "PKB_TEAM_PRO", "PKB_TEAM_COORD", "Bearer x",
        "https://w3id.org/openmhealth", "omh:blood-pressure:4.0", "omh:blood-glucose:4.0",
        "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "00000000-0000-0000-0000-00000000000", "00000000-0000-0000-0000-0000000000000",
        "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", "../../etc/passwd", "AAAA", "=", "==",
        String(repeating: "a", count: 50), String(repeating: "a", count: 51),
        String(repeating: "a", count: 64), String(repeating: "a", count: 65),
        String(repeating: "a", count: 100), String(repeating: "a", count: 101),
        String(repeating: "a", count: 200), String(repeating: "a", count: 201),
        String(repeating: "a", count: 254), String(repeating: "a", count: 255), String(repeating: "a", count: 256),
        String(repeating: "a", count: 1000), String(repeating: "a", count: 1001),
        String(repeating: "a", count: 1024), String(repeating: "a", count: 1025),
        String(repeating: "é", count: 300), String(repeating: "e\u{301}", count: 300),
        String(repeating: "👩‍⚕️", count: 300), String(repeating: "\0", count: 300),
        String(repeating: "x", count: 70_000),
    ]
}

/// Fills any SwiftProtobuf message from fuzz bytes. Each field step reads
/// one byte: 0 (or the end of the input) ends the message, anything else
/// names a field number (1…12; the request types use at most 11). Nested
/// messages go at most `maximumDepth` deep, and a message takes at most
/// `fieldBudget` fields in all.
struct FuzzDecoder: SwiftProtobuf.Decoder {
    static let maximumDepth = 4
    var input: FuzzBytes
    let ids: [String]
    var depth = 0
    var fieldBudget = 96
    /// Repeated elements in all: one field may get 1001, not the product of
    /// nested counts.
    var elementBudget = 1100
    /// String bytes in all: about what one frame can carry (4 MiB).
    var byteBudget = 4 << 20

    init(_ input: FuzzBytes, ids: [String]) {
        self.input = input
        self.ids = ids
    }

    mutating func handleConflictingOneOf() throws {}

    mutating func nextFieldNumber() throws -> Int? {
        guard fieldBudget > 0, let byte = input.next(), byte != 0 else { return nil }
        fieldBudget -= 1
        return Int(byte - 1) % 12 + 1
    }

    // MARK: values

    mutating func int64() -> Int64 {
        let selector = input.byte()
        if selector < 200 { return Interesting.int64[Int(selector) % Interesting.int64.count] }
        if selector < 230 { return Int64(Int8(bitPattern: input.byte())) }
        return input.integer(Int64.self)
    }

    mutating func int32() -> Int32 {
        let selector = input.byte()
        if selector < 200 { return Interesting.int32[Int(selector) % Interesting.int32.count] }
        if selector < 230 { return Int32(Int8(bitPattern: input.byte())) }
        return input.integer(Int32.self)
    }

    mutating func uint64() -> UInt64 { UInt64(bitPattern: int64()) }
    mutating func uint32() -> UInt32 { UInt32(bitPattern: int32()) }

    mutating func double() -> Double {
        let selector = input.byte()
        if selector < 200 { return Interesting.double[Int(selector) % Interesting.double.count] }
        return Double(bitPattern: input.integer(UInt64.self))
    }

    mutating func bool() -> Bool { input.byte() & 1 == 1 }

    /// A seeded id (as is, upper-cased, padded or cut), an interesting
    /// string, or bytes from the input taken as UTF-8.
    mutating func string() -> String {
        let value = anyString()
        guard value.utf8.count <= byteBudget else { return "" }
        byteBudget -= value.utf8.count
        return value
    }

    private mutating func anyString() -> String {
        let selector = input.byte()
        switch selector {
        case 0..<96:
            guard !ids.isEmpty else { return "" }
            let id = ids[Int(input.byte()) % ids.count]
            switch selector % 8 {
            case 0: return id.uppercased()
            case 1: return " \(id)"
            case 2: return String(id.dropLast())
            case 3: return id + "\0"
            default: return id
            }
        case 96..<192:
            return Interesting.strings[Int(input.byte()) % Interesting.strings.count]
        default:
            let length = Int(input.byte() & 0x3F)
            return String(decoding: input.take(length), as: UTF8.self)
        }
    }

    /// How many elements a repeated field gets: mostly a few, sometimes
    /// more than any sane limit.
    mutating func count() -> Int {
        let byte = input.byte()
        let wanted: Int
        switch byte {
        case 255: wanted = 1001
        case 254: wanted = 101
        default: wanted = Int(byte % 5)
        }
        let granted = min(wanted, elementBudget)
        elementBudget -= granted
        return granted
    }

    mutating func repeated<T>(_ value: inout [T], _ element: (inout Self) -> T) {
        let n = count()
        guard n > 0 else { return }
        let first = element(&self)
        value.append(first)
        for _ in 1..<n { value.append(n > 8 ? first : element(&self)) }
    }

    mutating func enumValue<E: SwiftProtobuf.Enum>(_: E.Type) -> E where E.RawValue == Int {
        let selector = input.byte()
        let raw = selector < 240 ? Interesting.enumRaw[Int(selector) % Interesting.enumRaw.count] : Int(input.integer(Int32.self))
        return E(rawValue: raw) ?? E()
    }

    mutating func message<M: SwiftProtobuf.Message>(_ existing: M?) throws -> M? {
        guard depth < Self.maximumDepth else { return existing }
        var message = existing ?? M()
        depth += 1
        defer { depth -= 1 }
        try message.decodeMessage(decoder: &self)
        return message
    }

    // MARK: SwiftProtobuf.Decoder

    mutating func decodeSingularFloatField(value: inout Float) throws { value = Float(double()) }
    mutating func decodeSingularFloatField(value: inout Float?) throws { value = Float(double()) }
    mutating func decodeRepeatedFloatField(value: inout [Float]) throws { repeated(&value) { Float($0.double()) } }
    mutating func decodeSingularDoubleField(value: inout Double) throws { value = double() }
    mutating func decodeSingularDoubleField(value: inout Double?) throws { value = double() }
    mutating func decodeRepeatedDoubleField(value: inout [Double]) throws { repeated(&value) { $0.double() } }
    mutating func decodeSingularInt32Field(value: inout Int32) throws { value = int32() }
    mutating func decodeSingularInt32Field(value: inout Int32?) throws { value = int32() }
    mutating func decodeRepeatedInt32Field(value: inout [Int32]) throws { repeated(&value) { $0.int32() } }
    mutating func decodeSingularInt64Field(value: inout Int64) throws { value = int64() }
    mutating func decodeSingularInt64Field(value: inout Int64?) throws { value = int64() }
    mutating func decodeRepeatedInt64Field(value: inout [Int64]) throws { repeated(&value) { $0.int64() } }
    mutating func decodeSingularUInt32Field(value: inout UInt32) throws { value = uint32() }
    mutating func decodeSingularUInt32Field(value: inout UInt32?) throws { value = uint32() }
    mutating func decodeRepeatedUInt32Field(value: inout [UInt32]) throws { repeated(&value) { $0.uint32() } }
    mutating func decodeSingularUInt64Field(value: inout UInt64) throws { value = uint64() }
    mutating func decodeSingularUInt64Field(value: inout UInt64?) throws { value = uint64() }
    mutating func decodeRepeatedUInt64Field(value: inout [UInt64]) throws { repeated(&value) { $0.uint64() } }
    mutating func decodeSingularSInt32Field(value: inout Int32) throws { value = int32() }
    mutating func decodeSingularSInt32Field(value: inout Int32?) throws { value = int32() }
    mutating func decodeRepeatedSInt32Field(value: inout [Int32]) throws { repeated(&value) { $0.int32() } }
    mutating func decodeSingularSInt64Field(value: inout Int64) throws { value = int64() }
    mutating func decodeSingularSInt64Field(value: inout Int64?) throws { value = int64() }
    mutating func decodeRepeatedSInt64Field(value: inout [Int64]) throws { repeated(&value) { $0.int64() } }
    mutating func decodeSingularFixed32Field(value: inout UInt32) throws { value = uint32() }
    mutating func decodeSingularFixed32Field(value: inout UInt32?) throws { value = uint32() }
    mutating func decodeRepeatedFixed32Field(value: inout [UInt32]) throws { repeated(&value) { $0.uint32() } }
    mutating func decodeSingularFixed64Field(value: inout UInt64) throws { value = uint64() }
    mutating func decodeSingularFixed64Field(value: inout UInt64?) throws { value = uint64() }
    mutating func decodeRepeatedFixed64Field(value: inout [UInt64]) throws { repeated(&value) { $0.uint64() } }
    mutating func decodeSingularSFixed32Field(value: inout Int32) throws { value = int32() }
    mutating func decodeSingularSFixed32Field(value: inout Int32?) throws { value = int32() }
    mutating func decodeRepeatedSFixed32Field(value: inout [Int32]) throws { repeated(&value) { $0.int32() } }
    mutating func decodeSingularSFixed64Field(value: inout Int64) throws { value = int64() }
    mutating func decodeSingularSFixed64Field(value: inout Int64?) throws { value = int64() }
    mutating func decodeRepeatedSFixed64Field(value: inout [Int64]) throws { repeated(&value) { $0.int64() } }
    mutating func decodeSingularBoolField(value: inout Bool) throws { value = bool() }
    mutating func decodeSingularBoolField(value: inout Bool?) throws { value = bool() }
    mutating func decodeRepeatedBoolField(value: inout [Bool]) throws { repeated(&value) { $0.bool() } }
    mutating func decodeSingularStringField(value: inout String) throws { value = string() }
    mutating func decodeSingularStringField(value: inout String?) throws { value = string() }
    mutating func decodeRepeatedStringField(value: inout [String]) throws { repeated(&value) { $0.string() } }
    mutating func decodeSingularBytesField(value: inout Data) throws { value = Data(string().utf8) }
    mutating func decodeSingularBytesField(value: inout Data?) throws { value = Data(string().utf8) }
    mutating func decodeRepeatedBytesField(value: inout [Data]) throws { repeated(&value) { Data($0.string().utf8) } }

    mutating func decodeSingularEnumField<E: SwiftProtobuf.Enum>(value: inout E) throws where E.RawValue == Int {
        value = enumValue(E.self)
    }
    mutating func decodeSingularEnumField<E: SwiftProtobuf.Enum>(value: inout E?) throws where E.RawValue == Int {
        value = enumValue(E.self)
    }
    mutating func decodeRepeatedEnumField<E: SwiftProtobuf.Enum>(value: inout [E]) throws where E.RawValue == Int {
        repeated(&value) { $0.enumValue(E.self) }
    }

    mutating func decodeSingularMessageField<M: SwiftProtobuf.Message>(value: inout M?) throws {
        value = try message(value)
    }
    mutating func decodeRepeatedMessageField<M: SwiftProtobuf.Message>(value: inout [M]) throws {
        guard depth < Self.maximumDepth else { return }
        let n = count()
        guard n > 0, let first: M = try message(nil) else { return }
        value.append(first)
        for _ in 1..<n { value.append(n > 8 ? first : (try message(nil)) ?? first) }
    }

    // The request types have no groups, maps or extensions: these leave
    // the field as it is.
    mutating func decodeSingularGroupField<G: SwiftProtobuf.Message>(value: inout G?) throws {}
    mutating func decodeRepeatedGroupField<G: SwiftProtobuf.Message>(value: inout [G]) throws {}
    mutating func decodeMapField<KeyType, ValueType: MapValueType>(
        fieldType: _ProtobufMap<KeyType, ValueType>.Type, value: inout _ProtobufMap<KeyType, ValueType>.BaseType
    ) throws {}
    mutating func decodeMapField<KeyType, ValueType>(
        fieldType: _ProtobufEnumMap<KeyType, ValueType>.Type, value: inout _ProtobufEnumMap<KeyType, ValueType>.BaseType
    ) throws where ValueType.RawValue == Int {}
    mutating func decodeMapField<KeyType, ValueType>(
        fieldType: _ProtobufMessageMap<KeyType, ValueType>.Type, value: inout _ProtobufMessageMap<KeyType, ValueType>.BaseType
    ) throws {}
    mutating func decodeExtensionField(values: inout ExtensionFieldValueSet, messageType: any Message.Type, fieldNumber: Int) throws {}
}
