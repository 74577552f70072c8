import Foundation
import GRDB
import ModelRegistryCore
import SQLiteMetadata

/// A connection of its own to a registry's database, for maintenance work beside (or without) a running
/// server: SQLite's locks serialize it with the server's pool, in this process or another.
public enum RegistryDatabase {
    /// Opens an existing registry database; refuses one whose schema is newer than this binary.
    public static func open(_ path: String) throws -> DatabaseQueue {
        guard FileManager.default.fileExists(atPath: path) else {
            throw RegistryError(
                .notFound, "no registry database at \(path): check that --data names a registry data directory")
        }
        var configuration = Configuration()
        configuration.busyMode = .timeout(30)
        let queue: DatabaseQueue
        let applied: Int
        do {
            queue = try DatabaseQueue(path: path, configuration: configuration)
            applied = try queue.read { db in
                guard try db.tableExists("schema_migrations") else { return -1 }
                return try SchemaMigrator.appliedVersion(db)
            }
        } catch {
            throw RegistryError(.storageFailure, "cannot read the registry database \(path): \(error)")
        }
        guard applied >= 0 else {
            throw RegistryError(
                .storageFailure, "\(path) is not a modelreg database (it has no schema_migrations table)")
        }
        let latest = SchemaMigrator().latestVersion
        guard applied <= latest else {
            throw RegistryError(
                .databaseTooNew,
                "the database \(path) is at schema version \(applied) but this modelreg knows only up to \(latest): upgrade modelreg"
            )
        }
        return queue
    }
}
