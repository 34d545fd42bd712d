import GRPCCore

/// A gRPC message as its bytes, both ways: orgd's gRPC server hands them to
/// the Dispatcher, which decodes each request once, and the Swift client
/// encodes and decodes the same way for every transport.
public struct RawBytes: MessageSerializer, MessageDeserializer {
    public typealias Message = [UInt8]

    public init() {}

    public func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes {
        Bytes(message)
    }

    public func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
        serializedMessageBytes.withUnsafeBytes { Array($0) }
    }
}

/// The `grpc-timeout` header: 1 to 8 digits and a unit (H, M, S, m, u, n).
/// grpc-swift reads and writes it too, but not publicly: the server needs it
/// to tell whether a cancelled call's deadline is why, and the client sends
/// it itself (see `GRPCCallTransport`).
public enum GRPCTimeout {
    private static let units: [(unit: Character, nanoseconds: Int64)] = [
        ("n", 1), ("u", 1_000), ("m", 1_000_000), ("S", 1_000_000_000), ("M", 60_000_000_000), ("H", 3_600_000_000_000),
    ]

    /// The duration a header says, or nil when it is not one.
    public static func duration(_ text: String) -> Duration? {
        guard let unit = text.last, (2...9).contains(text.count), let amount = Int64(text.dropLast()), amount >= 0,
              let size = units.first(where: { $0.unit == unit })?.nanoseconds else { return nil }
        // Whole seconds and up count in seconds: 99,999,999 H in nanoseconds overflows.
        return size >= 1_000_000_000 ? .seconds(amount * (size / 1_000_000_000)) : .nanoseconds(amount * size)
    }

    /// The header for a duration: the finest unit that holds it in eight
    /// digits, rounded up, so never shorter.
    public static func header(nanoseconds: Int64) -> String {
        for (unit, size) in units {
            let (whole, remainder) = nanoseconds.quotientAndRemainder(dividingBy: size)
            let value = whole + (remainder > 0 ? 1 : 0)
            if value <= 99_999_999 { return "\(value)\(unit)" }
        }
        return "99999999H"
    }
}
