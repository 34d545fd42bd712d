import Foundation

/// The identity of an e-mail address: what uniqueness and every lookup of a
/// user by address compare. An address is stored NFC-normalised as typed
/// (for display); its key is that, fully lowercased (Unicode, local part and
/// domain alike: orgd treats local parts case-insensitively, as nearly every
/// mail system does), then NFC again, since lowercasing can leave a string
/// that is no longer composed (U+0130 İ becomes i + U+0307).
public enum EmailKey {
    public static func of(_ address: String) -> String {
        address.precomposedStringWithCanonicalMapping.lowercased().precomposedStringWithCanonicalMapping
    }
}
