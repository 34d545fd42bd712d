import Logging
import PostgresNIO

// PLACEHOLDER written by the lead so the tree compiles; P1 replaces this whole
// file with the real schema and migrator.
public enum PostgresSchema {
    public static let latestVersion = 0
    static func migrate(_ connection: PostgresConnection, logger: Logger) async throws {}
}
