import Foundation
import GRDB
import ModelRegistryCore

/// Cache image records, in `cache_images`.
extension SQLiteMetadataStore {
    public func cacheImageRecords(_ model: ModelName, _ manifest: Digest) async throws -> [String: CacheImageRecord] {
        try await pool.read { db in
            let rows = try Row.fetchAll(
                db.cachedStatement(
                    sql: """
                        SELECT c.layout, c.digest, c.size, c.built_at, c.error FROM cache_images c
                        JOIN models m ON c.model_id = m.id WHERE m.name = ? AND c.manifest_digest = ?
                        """), arguments: [model.value, manifest.description])
            var records: [String: CacheImageRecord] = [:]
            for row in rows {
                records[row["layout"]] = CacheImageRecord(
                    digest: try (row["digest"] as String?).map { text throws(RegistryError) in
                        try Digest(parsing: text)
                    },
                    size: row["size"], builtAt: row["built_at"], error: row["error"])
            }
            return records
        }
    }

    public func recordCacheImage(_ record: CacheImageRecord, _ model: ModelName, _ manifest: Digest, layout: String)
        async throws
    {
        try await writing { db in
            try db.execute(
                sql: """
                    INSERT INTO cache_images (model_id, manifest_digest, layout, digest, size, built_at, error)
                    SELECT m.id, ?, ?, ?, ?, ?, ? FROM models m WHERE m.name = ? AND EXISTS (
                        SELECT 1 FROM variants va JOIN versions v ON va.version_id = v.id
                        WHERE v.model_id = m.id AND va.manifest_digest = ?)
                    ON CONFLICT (model_id, manifest_digest, layout) DO UPDATE SET
                        digest = excluded.digest, size = excluded.size, built_at = excluded.built_at,
                        error = excluded.error
                    """,
                arguments: [
                    manifest.description, layout, record.digest?.description, record.size, record.builtAt,
                    record.error, model.value, manifest.description,
                ])
        }
    }

    /// After variants of the model were deleted: the records of manifests none of its variants has any more.
    static func dropOrphanedCacheImages(_ db: Database, modelID: Int64) throws {
        try db.execute(
            sql: """
                DELETE FROM cache_images WHERE model_id = ? AND manifest_digest NOT IN (
                    SELECT va.manifest_digest FROM variants va JOIN versions v ON va.version_id = v.id
                    WHERE v.model_id = ?)
                """, arguments: [modelID, modelID])
    }
}
