import NIOCore

/// A look at a request envelope's wire bytes before it is decoded: how many
/// top-level fields and metadata entries it has, and how many bytes the
/// metadata takes. Decoding builds a value per metadata entry (a 4 MiB frame
/// of empty entries is two million of them), so the limits are checked here,
/// on the bytes, and the scan stops as soon as one is passed: its cost is
/// bounded by the limits, not by the frame.
public struct EnvelopeScan: Sendable, Equatable {
    /// What the scan found, when it went to the end.
    public enum Verdict: Sendable, Equatable {
        /// Within the limits, and every field walked to the end.
        case fits(metadataEntries: Int, metadataBytes: Int)
        /// More metadata entries than `maximumEntries`.
        case tooManyEntries(limit: Int)
        /// More metadata bytes (keys, values and their framing) than `maximumBytes`.
        case tooManyBytes(atLeast: Int, limit: Int)
        /// More top-level fields than any real envelope has.
        case tooManyFields(limit: Int)
        /// Not a sequence of protobuf fields the envelope can hold (a group,
        /// a reserved wire type, a value cut short): refused without decoding,
        /// since the decoder would keep what follows.
        case malformed(String)
    }

    /// Request's field number for `repeated KeyValue metadata`.
    static let metadataField: UInt64 = 5
    /// Fields other than metadata a real envelope carries (service, method,
    /// payload, timeout), with room for a few unknown ones from newer clients.
    public static let otherFieldAllowance = 16

    /// Scans `buffer` (a frame's data) without moving its reader index.
    public static func check(_ buffer: ByteBuffer, maximumEntries: Int, maximumBytes: Int) -> Verdict {
        var reader = buffer
        var entries = 0
        var bytes = 0
        var others = 0
        while reader.readableBytes > 0 {
            guard let tag = reader.readProtobufVarint(), tag >> 3 > 0 else { return .malformed("bad field tag") }
            let field = tag >> 3
            switch tag & 7 {
            case 0:
                guard reader.readProtobufVarint() != nil else { return .malformed("truncated varint") }
            case 1:
                guard reader.readSlice(length: 8) != nil else { return .malformed("truncated fixed64") }
            case 5:
                guard reader.readSlice(length: 4) != nil else { return .malformed("truncated fixed32") }
            case 2:
                guard let length = reader.readProtobufVarint(), length <= UInt64(reader.readableBytes) else {
                    return .malformed("truncated length-delimited field")
                }
                reader.moveReaderIndex(forwardBy: Int(length))
                if field == metadataField {
                    entries += 1
                    // The entry's bytes and its tag and length, so that empty
                    // entries are not free.
                    bytes += Int(length) + 2
                    if entries > maximumEntries { return .tooManyEntries(limit: maximumEntries) }
                    if bytes > maximumBytes { return .tooManyBytes(atLeast: bytes, limit: maximumBytes) }
                    continue
                }
            default:
                // Groups (3, 4) are not in the envelope's schema, and the
                // decoder would keep one as an unknown field; 6 and 7 are not wire types.
                return .malformed("wire type \(tag & 7) in field \(field)")
            }
            others += 1
            if others > otherFieldAllowance + 4 { return .tooManyFields(limit: otherFieldAllowance + 4) }
        }
        return .fits(metadataEntries: entries, metadataBytes: bytes)
    }
}

extension ByteBuffer {
    /// A base-128 varint of at most ten bytes; nil when truncated or longer.
    mutating func readProtobufVarint() -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        var peek = self
        while shift < 70, let byte = peek.readInteger(as: UInt8.self) {
            value |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 {
                self = peek
                return value
            }
            shift += 7
        }
        return nil
    }
}
