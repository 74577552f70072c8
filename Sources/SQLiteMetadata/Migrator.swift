import GRDB
import ModelRegistryCore

/// One numbered step of the schema, from `Migrations/sqlite/NNNN_name.sql`.
public struct Migration: Sendable {
    public var version: Int
    public var name: String
    public var sql: String
}

/// Applies the embedded migrations in order, one transaction each, and records them in `schema_migrations`.
/// A database that has migrations this binary does not know is refused rather than guessed at.
public struct SchemaMigrator: Sendable {
    public let migrations: [Migration]

    public init(migrations: [Migration] = SchemaMigrator.embedded) {
        self.migrations = migrations
    }

    /// The migrations compiled into this binary.
    public static var embedded: [Migration] { embeddedMigrations }

    public var latestVersion: Int { migrations.last?.version ?? 0 }

    /// Brings the database up to `target` (default: the latest) and returns the version it is now at.
    @discardableResult
    public func migrate(_ writer: any DatabaseWriter, upTo target: Int? = nil) throws -> Int {
        let target = target ?? latestVersion
        return try writer.writeWithoutTransaction { db in
            try db.execute(
                sql: """
                    CREATE TABLE IF NOT EXISTS schema_migrations (
                        version INTEGER PRIMARY KEY,
                        name TEXT NOT NULL,
                        applied_at TEXT NOT NULL
                    )
                    """)
            var current = try Self.appliedVersion(db)
            guard current <= latestVersion else {
                throw RegistryError(
                    .databaseTooNew,
                    "the database is at schema version \(current) but this modelreg knows only up to \(latestVersion): upgrade modelreg"
                )
            }
            for migration in migrations where migration.version > current && migration.version <= target {
                try db.inTransaction {
                    try db.execute(sql: migration.sql)
                    try db.execute(
                        sql: "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                        arguments: [migration.version, migration.name, Timestamp.now()]
                    )
                    return .commit
                }
                current = migration.version
            }
            return current
        }
    }

    public static func appliedVersion(_ db: Database) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT MAX(version) FROM schema_migrations") ?? 0
    }
}
