import Foundation
import ModelRegistryCore
import NIOCore
import PostgresNIO

/// Blob records, publishing, and reading the catalogue.
extension PostgresMetadataStore {
    /// `created_at` is the time the blob was last stored (text that compares in time order); a row is
    /// rewritten only for a later time. A batch names each digest once, as an upsert may touch a row once.
    public func recordBlobs(_ blobs: [StoredBlob]) async throws {
        var latest: [Digest: StoredBlob] = [:]
        for blob in blobs where latest[blob.digest].map({ $0.stored < blob.stored }) ?? true {
            latest[blob.digest] = blob
        }
        guard !latest.isEmpty else { return }
        let batch = latest.values.sorted { $0.digest < $1.digest }
        let digests = batch.map(\.digest.description)
        let sizes = batch.map(\.size)
        let times = batch.map { Timestamp.format($0.stored) }
        try await writing { connection in
            _ = try await connection.query(
                """
                INSERT INTO blobs (digest, size, created_at)
                SELECT * FROM UNNEST(\(digests)::text[], \(sizes)::bigint[], \(times)::text[])
                ON CONFLICT (digest) DO UPDATE SET created_at = excluded.created_at
                WHERE excluded.created_at > blobs.created_at
                """, logger: self.logger)
        }
    }

    public func referencedBlobs() async throws -> Set<Digest> {
        try await reading { connection in
            Set(
                try await connection.values(
                    """
                    SELECT digest FROM manifest_files UNION SELECT digest FROM oci_referrer_blobs
                    UNION SELECT digest FROM oci_archive_layers
                    """, String.self, logger: self.logger
                )
                .map { try Digest(parsing: $0) })
        }
    }

    /// Each candidate's record is locked before its references are looked for, in a statement of its own
    /// (which sees what was committed by then): a publish holding the record for share commits first and is
    /// seen, or finds the record gone and fails.
    public func claimUnreferencedBlobs(_ candidates: [Digest], recordedBefore cutoff: Date) async throws -> [Digest] {
        guard !candidates.isEmpty else { return [] }
        let before = Timestamp.format(cutoff)
        return try await writing { connection in
            var claimed: [Digest] = []
            for digest in candidates.sorted() {
                let key = digest.description
                let recorded = try await connection.values(
                    "SELECT created_at FROM blobs WHERE digest = \(key) FOR UPDATE", String.self, logger: self.logger
                ).first
                if let recorded, recorded >= before { continue }
                let referenced = try await connection.values(
                    """
                    SELECT EXISTS (SELECT 1 FROM manifest_files WHERE digest = \(key))
                        OR EXISTS (SELECT 1 FROM oci_referrer_blobs WHERE digest = \(key))
                        OR EXISTS (SELECT 1 FROM oci_archive_layers WHERE digest = \(key))
                    """, Bool.self, logger: self.logger
                )
                if referenced.first == true { continue }
                if recorded != nil {
                    try await connection.query("DELETE FROM blobs WHERE digest = \(key)", logger: self.logger)
                }
                claimed.append(digest)
            }
            return claimed
        }
    }

    public func publish(_ request: PublishRequest) async throws -> PublishOutcome {
        let document = request.document
        return try await writing { connection in
            let modelID = try await Self.lockModel(connection, request.model, creating: true, logger: self.logger)
            let versionID = try await Self.ensureVersion(
                connection, modelID, request.model, request.version, logger: self.logger)
            if let existing = try await Self.variantSummaries(
                connection, "WHERE va.version_id = \(versionID) AND va.name = \(request.variant.value)",
                logger: self.logger
            ).first?.summary {
                guard existing.digest == document.digest else {
                    throw RegistryError.alreadyPublished(
                        request.model, request.version, request.variant, as: existing.digest)
                }
                return .unchanged(existing)
            }
            let createdAt = Timestamp.now()
            try await Self.insertVariant(
                connection, versionID: versionID, request.variant, document, request.manifest,
                pushedArtifact: request.pushedArtifact, createdAt: createdAt, createdBy: request.actor,
                logger: self.logger)
            try await Self.audit(
                connection, request.actor, .publish, request.model, target: "\(request.model):\(request.version)",
                detail: "variant \(request.variant) \(document.digest)", logger: self.logger)
            return .created(
                VariantSummary(
                    name: request.variant, digest: document.digest, format: request.manifest.format,
                    size: request.manifest.totalSize, fileCount: request.manifest.files.count, createdAt: createdAt,
                    createdBy: request.actor))
        }
    }

    /// The model's id, its row locked until the transaction ends: writes to one model serialize on it. The
    /// update moves the model's change count, committed with the write (`changeCount(of:)`). With `creating`,
    /// a model that does not exist yet is created (two first publishes at once: the second waits for the
    /// first's commit, then finds the row).
    static func lockModel(_ connection: PostgresConnection, _ name: ModelName, creating: Bool, logger: Logger)
        async throws -> Int64
    {
        if creating {
            try await connection.query(
                """
                INSERT INTO models (name, created_at) VALUES (\(name.value), \(Timestamp.now()))
                ON CONFLICT (name) DO NOTHING
                """, logger: logger)
        }
        var updated: (id: Int64, count: Int64)?
        let rows = try await connection.query(
            "UPDATE models SET change_count = nextval('model_changes') WHERE name = \(name.value) RETURNING id, change_count",
            logger: logger)
        for try await row in rows.decode((Int64, Int64).self) { updated = row }
        guard let updated else { throw RegistryError.notFound("model \(name)") }
        WrittenModelCounts.current?.note(Int(updated.count), of: name.value)
        return updated.id
    }

    private static func ensureVersion(
        _ connection: PostgresConnection, _ modelID: Int64, _ model: ModelName, _ version: VersionName,
        logger: Logger
    ) async throws -> Int64 {
        if let id = try await versionID(connection, modelID, version, logger: logger) { return id }
        try await refuseDeleted(connection, modelID, model, version, logger: logger)
        return try await connection.values(
            """
            INSERT INTO versions (model_id, name, created_at) VALUES (\(modelID), \(version.value), \(Timestamp.now()))
            RETURNING id
            """, Int64.self, logger: logger
        )[0]
    }

    /// The model's id, or nil when it does not exist.
    static func modelID(_ connection: PostgresConnection, _ name: ModelName, logger: Logger) async throws -> Int64? {
        try await connection.values("SELECT id FROM models WHERE name = \(name.value)", Int64.self, logger: logger)
            .first
    }

    static func versionID(_ connection: PostgresConnection, _ modelID: Int64, _ version: VersionName, logger: Logger)
        async throws -> Int64?
    {
        try await connection.values(
            "SELECT id FROM versions WHERE model_id = \(modelID) AND name = \(version.value)", Int64.self,
            logger: logger
        ).first
    }

    static func refuseDeleted(
        _ connection: PostgresConnection, _ modelID: Int64, _ model: ModelName, _ version: VersionName,
        logger: Logger
    ) async throws {
        if let deletedAt = try await connection.values(
            "SELECT deleted_at FROM deleted_versions WHERE model_id = \(modelID) AND name = \(version.value)",
            String.self, logger: logger
        ).first {
            throw RegistryError.deletedVersion(model, version, at: deletedAt)
        }
    }

    /// The recorded sizes of blobs, their records locked for share until the transaction ends, so garbage
    /// collection cannot claim them meanwhile.
    static func lockRecordedSizes(_ connection: PostgresConnection, _ blobs: [Digest], logger: Logger) async throws
        -> [Digest: Int64]
    {
        let digests = Array(Set(blobs.map(\.description))).sorted()
        var sizes: [Digest: Int64] = [:]
        for (digest, size) in try await connection.rows(
            "SELECT digest, size FROM blobs WHERE digest = ANY(\(digests)::text[]) ORDER BY digest FOR SHARE",
            (String, Int64).self, logger: logger)
        {
            sizes[try Digest(parsing: digest)] = size
        }
        return sizes
    }

    /// Adds a variant and the index of the files its manifest names. Every file's blob must be recorded with
    /// the size the manifest claims; the records are locked for share until the transaction ends, so garbage
    /// collection cannot claim them meanwhile.
    static func insertVariant(
        _ connection: PostgresConnection, versionID: Int64, _ name: VariantName, _ document: ManifestDocument,
        _ manifest: Manifest, pushedArtifact: PushedArtifact?, createdAt: String, createdBy: String, logger: Logger
    ) async throws {
        let archiveLayers = pushedArtifact?.archiveLayers(besides: manifest.files) ?? []
        let sizes = try await lockRecordedSizes(
            connection, manifest.files.map(\.digest) + archiveLayers.map(\.digest), logger: logger)
        try manifest.requireBlobs(archiveLayers: archiveLayers) { sizes[$0] }
        let variantID = try await connection.values(
            """
            INSERT INTO variants (version_id, name, manifest_digest, manifest, media_type, format, total_size,
                                  file_count, created_at, created_by, oci_manifest, oci_manifest_media_type,
                                  oci_config, oci_config_media_type)
            VALUES (\(versionID), \(name.value), \(document.digest.description), \(ByteBuffer(bytes: document.bytes)),
                    \(document.mediaType), \(manifest.format.rawValue), \(manifest.totalSize),
                    \(Int64(manifest.files.count)), \(createdAt), \(createdBy),
                    \(pushedArtifact.map { ByteBuffer(bytes: $0.manifest.bytes) }), \(pushedArtifact?.manifest.mediaType),
                    \(pushedArtifact.map { ByteBuffer(bytes: $0.config.bytes) }), \(pushedArtifact?.config.mediaType))
            RETURNING id
            """, Int64.self, logger: logger
        )[0]
        let files = manifest.files
        try await connection.query(
            """
            INSERT INTO manifest_files (variant_id, path, digest, size, executable)
            SELECT \(variantID), * FROM UNNEST(\(files.map(\.path.value))::text[],
                \(files.map(\.digest.description))::text[], \(files.map(\.size))::bigint[],
                \(files.map(\.executable))::boolean[])
            """, logger: logger)
        if !archiveLayers.isEmpty {
            try await connection.query(
                """
                INSERT INTO oci_archive_layers (variant_id, digest, size)
                SELECT \(variantID), * FROM UNNEST(\(archiveLayers.map(\.digest.description))::text[],
                    \(archiveLayers.map(\.size))::bigint[])
                """, logger: logger)
        }
    }

    /// The columns `variantSummaries` reads, from `variants va`.
    private static let variantColumns: PostgresQuery = """
        SELECT va.name, va.manifest_digest, va.format, va.total_size, va.file_count, va.created_at, va.created_by,
               va.version_id FROM variants va
        """

    /// The variants a condition on `variants va` selects, in name order, each with its version's id.
    static func variantSummaries(_ connection: PostgresConnection, _ condition: PostgresQuery, logger: Logger)
        async throws -> [(summary: VariantSummary, versionID: Int64)]
    {
        var query = variantColumns
        query.sql += " " + condition.sql + " ORDER BY va.name COLLATE \"C\""
        query.binds = condition.binds
        return try await connection.rows(
            query, (String, String, String, Int64, Int64, String, String, Int64).self, logger: logger
        ).map { name, digest, format, size, files, createdAt, createdBy, versionID in
            (
                VariantSummary(
                    name: try VariantName(name), digest: try Digest(parsing: digest),
                    format: ModelFormat(rawValue: format) ?? .other, size: size, fileCount: Int(files),
                    createdAt: createdAt, createdBy: createdBy),
                versionID
            )
        }
    }

    public func listModels() async throws -> [ModelSummary] {
        try await readingSnapshot { connection in
            let aliases = try await Self.aliases(connection, modelID: nil, logger: self.logger)
            return try await connection.rows(
                """
                SELECT m.id, m.name, m.created_at,
                       (SELECT COUNT(*) FROM versions v WHERE v.model_id = m.id),
                       (SELECT v.name FROM versions v WHERE v.model_id = m.id AND v.deprecated_at IS NULL
                         ORDER BY v.created_at DESC, v.id DESC LIMIT 1),
                       (SELECT COALESCE(SUM(va.total_size), 0)::bigint FROM variants va
                         JOIN versions v ON va.version_id = v.id WHERE v.model_id = m.id)
                FROM models m ORDER BY m.name COLLATE "C"
                """, (Int64, String, String, Int64, String?, Int64).self, logger: self.logger
            ).map { id, name, createdAt, versionCount, latest, size in
                ModelSummary(
                    name: try ModelName(name), createdAt: createdAt, versionCount: Int(versionCount),
                    latestVersion: try latest.map { text throws(RegistryError) in try VersionName(text) }, size: size,
                    aliases: aliases[id] ?? [])
            }
        }
    }

    public func model(_ name: ModelName) async throws -> ModelDetail? {
        try await readingSnapshot { connection in
            guard
                let (modelID, createdAt) = try await connection.rows(
                    "SELECT id, created_at FROM models WHERE name = \(name.value)", (Int64, String).self,
                    logger: self.logger
                ).first
            else { return nil }
            let aliases = try await Self.aliases(connection, modelID: modelID, logger: self.logger)[modelID] ?? []
            let versions = try await Self.versionSummaries(
                connection, "WHERE v.model_id = \(modelID)", aliases: aliases, logger: self.logger)
            return ModelDetail(name: name, createdAt: createdAt, versions: versions, aliases: aliases)
        }
    }

    public func version(_ name: ModelName, _ version: VersionName) async throws -> VersionSummary? {
        try await readingSnapshot { connection in
            guard
                let modelID = try await Self.modelID(connection, name, logger: self.logger)
            else { return nil }
            let aliases = try await Self.aliases(connection, modelID: modelID, logger: self.logger)[modelID] ?? []
            return try await Self.versionSummaries(
                connection, "WHERE v.model_id = \(modelID) AND v.name = \(version.value)", aliases: aliases,
                logger: self.logger
            ).first
        }
    }

    /// The versions a condition on `versions v` selects, newest first, each with its variants.
    static func versionSummaries(
        _ connection: PostgresConnection, _ condition: PostgresQuery, aliases: [AliasTarget], logger: Logger
    ) async throws -> [VersionSummary] {
        var query: PostgresQuery = """
            SELECT v.id, v.name, v.created_at, v.deprecated_at, v.deprecated_by, v.deprecation_reason FROM versions v
            """
        query.sql += " " + condition.sql + " ORDER BY v.created_at DESC, v.id DESC"
        query.binds = condition.binds
        let rows = try await connection.rows(
            query, (Int64, String, String, String?, String?, String?).self, logger: logger)
        guard !rows.isEmpty else { return [] }
        var variants: [Int64: [VariantSummary]] = [:]
        for (summary, versionID) in try await variantSummaries(
            connection, "WHERE va.version_id = ANY(\(rows.map(\.0))::bigint[])", logger: logger)
        {
            variants[versionID, default: []].append(summary)
        }
        return try rows.map { id, name, createdAt, deprecatedAt, deprecatedBy, reason in
            let version = try VersionName(name)
            let versionVariants = variants[id] ?? []
            return VersionSummary(
                name: version, createdAt: createdAt, size: versionVariants.reduce(0) { $0 + $1.size },
                variants: versionVariants, aliases: aliases.filter { $0.version == version }.map(\.name),
                deprecation: deprecatedAt.map { Deprecation(at: $0, by: deprecatedBy ?? "", reason: reason) })
        }
    }

    /// Aliases by model id, each model's in name order: of one model, or of every model (nil).
    static func aliases(_ connection: PostgresConnection, modelID: Int64?, logger: Logger) async throws
        -> [Int64: [AliasTarget]]
    {
        var result: [Int64: [AliasTarget]] = [:]
        for (model, name, version, variant, updatedAt, updatedBy) in try await connection.rows(
            """
            SELECT a.model_id, a.name, v.name, a.variant, a.updated_at, a.updated_by
            FROM aliases a JOIN versions v ON a.version_id = v.id
            WHERE \(modelID)::bigint IS NULL OR a.model_id = \(modelID) ORDER BY a.name COLLATE "C"
            """, (Int64, String, String, String?, String, String).self, logger: logger)
        {
            result[model, default: []].append(
                AliasTarget(
                    name: try AliasName(name), version: try VersionName(version),
                    variant: try variant.map { text throws(RegistryError) in try VariantName(text) },
                    updatedAt: updatedAt, updatedBy: updatedBy))
        }
        return result
    }

    public func manifest(_ name: ModelName, _ version: VersionName, _ variant: VariantName) async throws
        -> StoredManifest?
    {
        try await reading { connection in
            try await Self.storedManifest(
                connection, "WHERE m.name = \(name.value) AND v.name = \(version.value) AND va.name = \(variant.value)",
                logger: self.logger)
        }
    }

    public func manifest(_ name: ModelName, digest: Digest) async throws -> StoredManifest? {
        try await reading { connection in
            try await Self.storedManifest(
                connection, "WHERE m.name = \(name.value) AND va.manifest_digest = \(digest.description)",
                logger: self.logger)
        }
    }

    static func storedManifest(_ connection: PostgresConnection, _ condition: PostgresQuery, logger: Logger)
        async throws -> StoredManifest?
    {
        var query: PostgresQuery = """
            SELECT m.name, v.name, va.name, va.manifest_digest, va.manifest, va.media_type, v.deprecated_at,
                   v.deprecated_by, v.deprecation_reason, va.oci_manifest, va.oci_manifest_media_type, va.oci_config,
                   va.oci_config_media_type
            FROM variants va JOIN versions v ON va.version_id = v.id JOIN models m ON v.model_id = m.id
            """
        query.sql += " " + condition.sql + " ORDER BY va.id LIMIT 1"
        query.binds = condition.binds
        guard
            let row = try await connection.rows(
                query,
                (
                    String, String, String, String, ByteBuffer, String, String?, String?, String?, ByteBuffer?, String?,
                    ByteBuffer?, String?
                ).self,
                logger: logger
            ).first
        else { return nil }
        let (model, version, variant, digest, bytes, mediaType, deprecatedAt, deprecatedBy, reason) =
            (row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8)
        return StoredManifest(
            model: try ModelName(model), version: try VersionName(version), variant: try VariantName(variant),
            digest: try Digest(parsing: digest), bytes: Array(bytes.readableBytesView), mediaType: mediaType,
            deprecation: deprecatedAt.map { Deprecation(at: $0, by: deprecatedBy ?? "", reason: reason) },
            pushedArtifact: pushedArtifact(row.9, row.10, row.11, row.12))
    }

    /// The OCI artifact a variant row keeps, if it was pushed as one.
    static func pushedArtifact(
        _ manifest: ByteBuffer?, _ manifestType: String?, _ config: ByteBuffer?, _ configType: String?
    ) -> PushedArtifact? {
        guard let manifest, let manifestType, let config, let configType else { return nil }
        return PushedArtifact(
            manifest: ManifestDocument(bytes: Array(manifest.readableBytesView), mediaType: manifestType),
            config: ManifestDocument(bytes: Array(config.readableBytesView), mediaType: configType))
    }

    /// Reference resolution in one snapshot: an init container's first request, which never sees an alias
    /// move half-applied.
    public func resolve(_ reference: ModelReference, variant requested: VariantName?) async throws -> StoredManifest {
        try ReleaseRules.checkResolvable(reference, variant: requested)
        return try await readingSnapshot { connection in
            let name = reference.name
            guard
                let modelID = try await Self.modelID(connection, name, logger: self.logger)
            else {
                throw RegistryError.notFound("model \(name)")
            }
            switch reference.target {
            case .model:
                throw RegistryError(.internalError, "\(reference) passed the check of resolvable references")
            case .digest(let digest):
                guard
                    let stored = try await Self.storedManifest(
                        connection, "WHERE m.id = \(modelID) AND va.manifest_digest = \(digest.description)",
                        logger: self.logger)
                else {
                    throw RegistryError.notFound("manifest \(reference)")
                }
                return stored
            case .version(let version):
                return try await Self.pick(
                    connection, modelID, name, version, requested, reference, logger: self.logger)
            case .alias(let alias) where alias == .latest:
                guard
                    let newest = try await connection.values(
                        """
                        SELECT name FROM versions WHERE model_id = \(modelID) AND deprecated_at IS NULL
                        ORDER BY created_at DESC, id DESC LIMIT 1
                        """, String.self, logger: self.logger
                    ).first
                else {
                    throw RegistryError.notFound("\(reference) (every version of \(name) is deprecated or deleted)")
                }
                return try await Self.pick(
                    connection, modelID, name, try VersionName(newest), requested, reference, logger: self.logger)
            case .alias(let alias):
                guard
                    let (version, variant) = try await connection.rows(
                        """
                        SELECT v.name, a.variant FROM aliases a JOIN versions v ON a.version_id = v.id
                        WHERE a.model_id = \(modelID) AND a.name = \(alias.value)
                        """, (String, String?).self, logger: self.logger
                    ).first
                else {
                    throw RegistryError.notFound("alias '\(alias)' of model \(name)")
                }
                let pinned = try variant.map { text throws(RegistryError) in try VariantName(text) }
                return try await Self.pick(
                    connection, modelID, name, try VersionName(version), requested ?? pinned, reference,
                    logger: self.logger)
            }
        }
    }

    private static func pick(
        _ connection: PostgresConnection, _ modelID: Int64, _ name: ModelName, _ version: VersionName,
        _ requested: VariantName?, _ reference: ModelReference, logger: Logger
    ) async throws -> StoredManifest {
        guard let versionID = try await versionID(connection, modelID, version, logger: logger) else {
            throw RegistryError.notFound("version \(name):\(version)")
        }
        let variants = try await connection.values(
            "SELECT name FROM variants WHERE version_id = \(versionID) ORDER BY name COLLATE \"C\"", String.self,
            logger: logger
        ).map { text throws(RegistryError) in try VariantName(text) }
        let chosen = try ReleaseRules.chooseVariant(requested, among: variants, of: name, version, shownAs: reference)
        guard
            let stored = try await storedManifest(
                connection, "WHERE va.version_id = \(versionID) AND va.name = \(chosen.value)", logger: logger)
        else {
            throw RegistryError.notFound("variant '\(chosen)' of \(name):\(version)")
        }
        return stored
    }
}
