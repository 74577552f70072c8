import Logging
import ModelRegistryCore
import NIOCore
import PostgresNIO

extension PostgresMetadataStore {
    public func recordReferrer(
        _ referrer: StoredReferrer, of model: ModelName, _ version: VersionName, _ variant: VariantName
    ) async throws {
        try await writing { connection in
            let modelID = try await Self.lockModel(connection, model, creating: false, logger: self.logger)
            guard
                let variantID = try await connection.values(
                    """
                    SELECT va.id FROM variants va JOIN versions v ON va.version_id = v.id
                    WHERE v.model_id = \(modelID) AND v.name = \(version.value) AND va.name = \(variant.value)
                    """, Int64.self, logger: self.logger
                ).first
            else {
                throw RegistryError(.notFound, "\(model):\(version) has no variant \(variant)")
            }
            try await Self.insertReferrer(connection, referrer, variantID: variantID, logger: self.logger)
        }
    }

    /// Keeps a referrer of a variant, unless it is kept already; its blobs' records must be there with their
    /// sizes, and are locked for share against garbage collection as a publish's are.
    static func insertReferrer(
        _ connection: PostgresConnection, _ referrer: StoredReferrer, variantID: Int64, logger: Logger
    ) async throws {
        let digest = referrer.document.digest.description
        let kept = try await connection.values(
            "SELECT EXISTS (SELECT 1 FROM oci_referrers WHERE variant_id = \(variantID) AND digest = \(digest))",
            Bool.self, logger: logger)
        if kept.first == true { return }
        let recorded = try await lockRecordedSizes(connection, referrer.blobs.map(\.digest), logger: logger)
        try referrer.requireBlobs { recorded[$0] }
        let id = try await connection.values(
            """
            INSERT INTO oci_referrers (variant_id, digest, subject, media_type, artifact_type, manifest, created_at,
                                       created_by)
            VALUES (\(variantID), \(digest), \(referrer.subject.description), \(referrer.document.mediaType),
                    \(referrer.artifactType), \(ByteBuffer(bytes: referrer.document.bytes)), \(referrer.createdAt),
                    \(referrer.createdBy))
            RETURNING id
            """, Int64.self, logger: logger)[0]
        for blob in referrer.blobs {
            try await connection.query(
                """
                INSERT INTO oci_referrer_blobs (referrer_id, digest, size)
                VALUES (\(id), \(blob.digest.description), \(blob.size))
                """, logger: logger)
        }
    }

    public func referrers(_ model: ModelName) async throws -> [StoredReferrer] {
        try await readingSnapshot { connection in
            try await Self.referrers(
                connection,
                """
                WHERE va.version_id IN (SELECT v.id FROM versions v JOIN models m ON v.model_id = m.id
                                        WHERE m.name = \(model.value))
                """, logger: self.logger)
        }
    }

    /// The referrers of the variants a condition on `va` (variants) picks, oldest first.
    static func referrers(_ connection: PostgresConnection, _ condition: PostgresQuery, logger: Logger)
        async throws -> [StoredReferrer]
    {
        var query: PostgresQuery = """
            SELECT r.id, r.subject, r.media_type, r.artifact_type, r.manifest, r.created_at, r.created_by
            FROM oci_referrers r JOIN variants va ON r.variant_id = va.id
            """
        query.sql += " " + condition.sql + " ORDER BY r.id"
        query.binds = condition.binds
        var referrers: [StoredReferrer] = []
        for (id, subject, mediaType, artifactType, manifest, createdAt, createdBy) in try await connection.rows(
            query, (Int64, String, String, String?, ByteBuffer, String, String).self, logger: logger)
        {
            let blobs = try await connection.rows(
                "SELECT digest, size FROM oci_referrer_blobs WHERE referrer_id = \(id) ORDER BY ctid",
                (String, Int64).self, logger: logger
            ).map { BlobEntry(digest: try Digest(parsing: $0.0), size: $0.1) }
            referrers.append(
                StoredReferrer(
                    document: ManifestDocument(bytes: Array(manifest.readableBytesView), mediaType: mediaType),
                    subject: try Digest(parsing: subject), artifactType: artifactType, blobs: blobs,
                    createdAt: createdAt, createdBy: createdBy))
        }
        return referrers
    }

    /// Drops the referrers of the variants of a version, before the variants go.
    static func deleteReferrers(_ connection: PostgresConnection, versionID: Int64, logger: Logger) async throws {
        try await connection.query(
            """
            DELETE FROM oci_referrer_blobs WHERE referrer_id IN
                (SELECT id FROM oci_referrers WHERE variant_id IN (SELECT id FROM variants WHERE version_id = \(versionID)))
            """, logger: logger)
        try await connection.query(
            "DELETE FROM oci_referrers WHERE variant_id IN (SELECT id FROM variants WHERE version_id = \(versionID))",
            logger: logger)
    }
}
