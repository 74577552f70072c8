import GRDB
import ModelRegistryCore

/// The blobs a backup must hold: each digest a manifest's files name, with its size.
enum ManifestFileReferences {
    static func blobs(_ db: Database) throws -> [BlobEntry] {
        try Row.fetchAll(
            db, sql: "SELECT digest, MAX(size) AS size FROM manifest_files GROUP BY digest ORDER BY digest"
        ).map { row in
            BlobEntry(digest: try Digest(parsing: row["digest"] as String), size: row["size"])
        }
    }
}
