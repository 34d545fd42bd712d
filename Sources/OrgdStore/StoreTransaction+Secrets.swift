import Crypto
import Foundation

extension StoreTransaction {
    /// The secret kept under `name`, made (256 random bits) by the first
    /// daemon that asks: every daemon over the database reads the same one.
    func sharedSecret(named name: String) throws -> [UInt8] {
        let fresh = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
        try execute("INSERT INTO orgd_secret (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING", [name, fresh])
        guard let value = try fetchValue(Data.self, "SELECT value FROM orgd_secret WHERE name = ?", [name]) else {
            throw StoreOpenError(description: "the database lost its \(name) while orgd started")
        }
        return [UInt8](value)
    }
}
