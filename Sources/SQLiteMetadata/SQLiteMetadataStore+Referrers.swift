import Foundation
import GRDB
import ModelRegistryCore

extension SQLiteMetadataStore {
    public func recordReferrer(
        _ referrer: StoredReferrer, of model: ModelName, _ version: VersionName, _ variant: VariantName
    ) async throws {
        try await writing(to: model) { db in
            guard
                let variantID = try Int64.fetchOne(
                    db,
                    sql: """
                        SELECT va.id FROM variants va JOIN versions v ON va.version_id = v.id
                        JOIN models m ON v.model_id = m.id WHERE m.name = ? AND v.name = ? AND va.name = ?
                        """, arguments: [model.value, version.value, variant.value])
            else {
                throw RegistryError(.notFound, "\(model):\(version) has no variant \(variant)")
            }
            try Self.insertReferrer(db, referrer, variantID: variantID)
        }
    }

    /// Keeps a referrer of a variant, unless it is kept already; its blobs must be recorded with their sizes.
    static func insertReferrer(_ db: Database, _ referrer: StoredReferrer, variantID: Int64) throws {
        let digest = referrer.document.digest.description
        if try Bool.fetchOne(
            db, sql: "SELECT EXISTS (SELECT 1 FROM oci_referrers WHERE variant_id = ? AND digest = ?)",
            arguments: [variantID, digest]) == true
        {
            return
        }
        try referrer.requireBlobs { blob in
            try Int64.fetchOne(db, sql: "SELECT size FROM blobs WHERE digest = ?", arguments: [blob.description])
        }
        try db.execute(
            sql: """
                INSERT INTO oci_referrers (variant_id, digest, subject, media_type, artifact_type, manifest, created_at, created_by)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                variantID, digest, referrer.subject.description, referrer.document.mediaType, referrer.artifactType,
                Data(referrer.document.bytes), referrer.createdAt, referrer.createdBy,
            ])
        let id = db.lastInsertedRowID
        for blob in referrer.blobs {
            try db.execute(
                sql: "INSERT INTO oci_referrer_blobs (referrer_id, digest, size) VALUES (?, ?, ?)",
                arguments: [id, blob.digest.description, blob.size])
        }
    }

    public func referrers(_ model: ModelName) async throws -> [StoredReferrer] {
        try await pool.read { db in
            try Self.referrers(
                db,
                where: """
                    va.version_id IN (SELECT v.id FROM versions v JOIN models m ON v.model_id = m.id WHERE m.name = ?)
                    """, [model.value])
        }
    }

    /// The referrers of the variants a condition on `va` (variants) picks, oldest first.
    static func referrers(_ db: Database, where condition: String, _ arguments: StatementArguments) throws
        -> [StoredReferrer]
    {
        try Row.fetchAll(
            db,
            sql: """
                SELECT r.id, r.subject, r.media_type, r.artifact_type, r.manifest, r.created_at, r.created_by
                FROM oci_referrers r JOIN variants va ON r.variant_id = va.id WHERE \(condition) ORDER BY r.id
                """, arguments: arguments
        ).map { row in
            let blobs = try Row.fetchAll(
                db, sql: "SELECT digest, size FROM oci_referrer_blobs WHERE referrer_id = ? ORDER BY rowid",
                arguments: [row["id"]]
            ).map { BlobEntry(digest: try Digest(parsing: $0["digest"] as String), size: $0["size"]) }
            return StoredReferrer(
                document: ManifestDocument(bytes: [UInt8](row["manifest"] as Data), mediaType: row["media_type"]),
                subject: try Digest(parsing: row["subject"] as String), artifactType: row["artifact_type"],
                blobs: blobs, createdAt: row["created_at"], createdBy: row["created_by"])
        }
    }

    /// Drops the referrers of the variants of a version, before the variants go.
    static func deleteReferrers(_ db: Database, versionID: Int64) throws {
        let variants = "SELECT id FROM variants WHERE version_id = ?"
        try db.execute(
            sql: """
                DELETE FROM oci_referrer_blobs WHERE referrer_id IN
                    (SELECT id FROM oci_referrers WHERE variant_id IN (\(variants)))
                """, arguments: [versionID])
        try db.execute(sql: "DELETE FROM oci_referrers WHERE variant_id IN (\(variants))", arguments: [versionID])
    }
}
