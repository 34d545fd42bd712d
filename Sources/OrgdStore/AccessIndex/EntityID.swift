import Crypto

/// An entity's id as the access index holds it: the 128 bits of the UUID
/// orgd gave it, in two words, instead of its 36-character text. Ordered as
/// the lowercase text is (so "the smallest id" means the same in both).
struct EntityID: Hashable, Comparable, Sendable, CustomStringConvertible {
    var high: UInt64
    var low: UInt64

    /// Parses a UUID in its canonical 8-4-4-4-12 form, either case; nil for
    /// anything else (no entity has such an id, so a lookup of it misses).
    init?(_ text: String) {
        var high: UInt64 = 0
        var low: UInt64 = 0
        var digits = 0
        var position = 0
        for byte in text.utf8 {
            defer { position += 1 }
            if position == 8 || position == 13 || position == 18 || position == 23 {
                guard byte == UInt8(ascii: "-") else { return nil }
                continue
            }
            let value: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): value = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): value = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            if digits < 16 {
                high = high << 4 | UInt64(value)
            } else {
                low = low << 4 | UInt64(value)
            }
            digits += 1
        }
        guard position == 36, digits == 32 else { return nil }
        self.high = high
        self.low = low
    }

    /// The canonical lowercase text, as orgd writes ids.
    var description: String {
        String(unsafeUninitializedCapacity: 36) { buffer in
            let hex = Array("0123456789abcdef".utf8)
            var out = 0
            for digit in 0..<32 {
                if digit == 8 || digit == 12 || digit == 16 || digit == 20 {
                    buffer[out] = UInt8(ascii: "-")
                    out += 1
                }
                let word = digit < 16 ? high : low
                let shift = UInt64(60 - 4 * (digit % 16))
                buffer[out] = hex[Int((word >> shift) & 0xf)]
                out += 1
            }
            return out
        }
    }

    static func < (a: EntityID, b: EntityID) -> Bool {
        a.high != b.high ? a.high < b.high : a.low < b.low
    }
}

/// A token's SHA-256, as the index keys tokens by it.
struct SecretHash: Hashable, Sendable {
    var words: (UInt64, UInt64, UInt64, UInt64)

    init?(_ bytes: some Collection<UInt8>) {
        guard bytes.count == 32 else { return nil }
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        for (index, byte) in bytes.enumerated() {
            switch index / 8 {
            case 0: words.0 = words.0 << 8 | UInt64(byte)
            case 1: words.1 = words.1 << 8 | UInt64(byte)
            case 2: words.2 = words.2 << 8 | UInt64(byte)
            default: words.3 = words.3 << 8 | UInt64(byte)
            }
        }
        self.words = words
    }

    /// The SHA-256 of a presented secret's UTF-8, hashed in place (no copy
    /// of the secret, no array for the digest).
    init(secret: String) {
        var secret = secret
        let digest = secret.withUTF8 { SHA256.hash(data: UnsafeRawBufferPointer($0)) }
        self = digest.withUnsafeBytes { SecretHash($0)! }
    }

    static func == (a: SecretHash, b: SecretHash) -> Bool {
        a.words.0 == b.words.0 && a.words.1 == b.words.1 && a.words.2 == b.words.2 && a.words.3 == b.words.3
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
        hasher.combine(words.2)
        hasher.combine(words.3)
    }
}
