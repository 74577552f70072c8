import GRDB
import ModelRegistryCore

/// Something in the database that keeps blobs alive. Garbage collection marks every digest any source
/// names, then asks every source again, inside the write transaction that deletes, before a blob goes.
/// Further kinds of reference (cache images) join by adding a source to `BlobReferences.all`.
public protocol BlobReferenceSource: Sendable {
    /// Every digest this source references, for the mark phase.
    func referencedDigests(_ db: Database) throws -> Set<Digest>
    /// Whether this source references `digest` now, for the re-check just before a deletion.
    func references(_ digest: Digest, _ db: Database) throws -> Bool
}

/// The files of every published variant manifest.
public struct ManifestFileReferences: BlobReferenceSource {
    public init() {}

    public func referencedDigests(_ db: Database) throws -> Set<Digest> {
        Set(
            try String.fetchAll(db, sql: "SELECT DISTINCT digest FROM manifest_files").map { text in
                try Digest(parsing: text)
            })
    }

    public func references(_ digest: Digest, _ db: Database) throws -> Bool {
        try Bool.fetchOne(
            db, sql: "SELECT EXISTS (SELECT 1 FROM manifest_files WHERE digest = ?)", arguments: [digest.description])
            ?? false
    }

    /// The blobs a backup must hold: each referenced digest with its size.
    public static func blobs(_ db: Database) throws -> [BlobEntry] {
        try Row.fetchAll(
            db, sql: "SELECT digest, MAX(size) AS size FROM manifest_files GROUP BY digest ORDER BY digest"
        ).map { row in
            BlobEntry(digest: try Digest(parsing: row["digest"] as String), size: row["size"])
        }
    }
}

public enum BlobReferences {
    /// Every source of references the registry has.
    public static let all: [any BlobReferenceSource] = [ManifestFileReferences()]
}
