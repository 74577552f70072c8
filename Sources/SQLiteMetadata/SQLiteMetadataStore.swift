import Foundation
import GRDB
import ModelRegistryCore
import Synchronization

/// Metadata in one SQLite database in WAL mode, schema from the embedded migrations.
public final class SQLiteMetadataStore: MetadataStore {
    let pool: DatabasePool
    private let migrator: SchemaMigrator
    private let changes = Mutex(ChangeCounts())

    /// Writes so far, and for each model written the count after its latest write.
    private struct ChangeCounts {
        var total = 0
        var models: [ModelName: Int] = [:]
    }

    /// Opens (creating if needed) and migrates the database at `path`. Without `migrating`, the database is
    /// left at the schema it has, for a look that must write nothing (a dry run beside a live server).
    public init(path: String, migrator: SchemaMigrator = SchemaMigrator(), migrating: Bool = true) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
        } catch {
            throw RegistryError(.storageFailure, "cannot open database \(path): \(error)")
        }
        self.migrator = migrator
        if migrating { try migrator.migrate(pool) }
    }

    /// Opens the database of an existing registry, for maintenance beside (or without) a running server:
    /// a missing file is refused rather than created (a mistyped `--data` never makes a registry), and so is
    /// a file that is not a modelreg database or whose schema is newer than this binary's.
    public static func openExisting(path: String, migrating: Bool = true) throws -> SQLiteMetadataStore {
        guard FileManager.default.fileExists(atPath: path) else {
            throw RegistryError(
                .notFound, "no registry database at \(path): check that --data names a registry data directory")
        }
        let store = try SQLiteMetadataStore(path: path, migrating: false)
        let applied: Int
        do {
            applied = try store.pool.read { db in
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
        let latest = store.migrator.latestVersion
        guard applied <= latest else {
            throw RegistryError(
                .databaseTooNew,
                "the database \(path) is at schema version \(applied) but this modelreg knows only up to \(latest): upgrade modelreg"
            )
        }
        if migrating { try store.migrator.migrate(store.pool) }
        return store
    }

    public var changeCount: Int { changes.withLock { $0.total } }

    public func changeCount(of model: ModelName) async throws -> Int { changes.withLock { $0.models[model] ?? 0 } }

    /// Every write goes through here, so that the change counts move after each one, committed or not.
    func writing<T: Sendable>(to model: ModelName? = nil, _ updates: @Sendable @escaping (Database) throws -> T)
        async throws -> T
    {
        try await writing(toModels: model.map { [$0] } ?? [], updates)
    }

    func writing<T: Sendable>(toModels models: [ModelName], _ updates: @Sendable @escaping (Database) throws -> T)
        async throws -> T
    {
        defer {
            changes.withLock { counts in
                counts.total += 1
                for model in models { counts.models[model] = counts.total }
            }
        }
        return try await pool.write(updates)
    }

    public func checkReady() async throws {
        let latest = migrator.latestVersion
        let applied = try await pool.read { db in try SchemaMigrator.appliedVersion(db) }
        guard applied == latest else {
            throw RegistryError(.storageFailure, "database schema is at version \(applied), expected \(latest)")
        }
    }

    /// `created_at` is the time the blob was last stored: ISO 8601 in UTC with fractional seconds, which
    /// compares as text in time order. A row is rewritten only for a later time, so recording every stored
    /// blob at start writes only the rows that are missing.
    public func recordBlobs(_ blobs: [StoredBlob]) async throws {
        guard !blobs.isEmpty else { return }
        try await writing { db in
            let statement = try db.cachedStatement(
                sql: """
                    INSERT INTO blobs (digest, size, created_at) VALUES (?, ?, ?)
                    ON CONFLICT (digest) DO UPDATE SET created_at = excluded.created_at
                    WHERE excluded.created_at > blobs.created_at
                    """)
            for blob in blobs {
                try statement.execute(arguments: [blob.digest.description, blob.size, Timestamp.format(blob.stored)])
            }
        }
    }

    public func referencedBlobs() async throws -> Set<Digest> {
        try await pool.read { db in
            Set(
                try String.fetchAll(
                    db,
                    sql: """
                        SELECT digest FROM manifest_files UNION SELECT digest FROM oci_referrer_blobs
                        UNION SELECT digest FROM oci_archive_layers
                        """
                ).map {
                    try Digest(parsing: $0)
                })
        }
    }

    public func claimUnreferencedBlobs(_ candidates: [Digest], recordedBefore cutoff: Date) async throws -> [Digest] {
        guard !candidates.isEmpty else { return [] }
        let before = Timestamp.format(cutoff)
        return try await writing { db in
            let referenced = try db.cachedStatement(
                sql: """
                    SELECT EXISTS (SELECT 1 FROM manifest_files WHERE digest = ?1)
                        OR EXISTS (SELECT 1 FROM oci_referrer_blobs WHERE digest = ?1)
                        OR EXISTS (SELECT 1 FROM oci_archive_layers WHERE digest = ?1)
                    """)
            let recorded = try db.cachedStatement(sql: "SELECT created_at FROM blobs WHERE digest = ?")
            let drop = try db.cachedStatement(sql: "DELETE FROM blobs WHERE digest = ?")
            var claimed: [Digest] = []
            for digest in candidates {
                let arguments: StatementArguments = [digest.description]
                if try Bool.fetchOne(referenced, arguments: arguments) == true { continue }
                if let time = try String.fetchOne(recorded, arguments: arguments) {
                    guard time < before else { continue }
                    try drop.execute(arguments: arguments)
                }
                claimed.append(digest)
            }
            return claimed
        }
    }

    /// Every blob the manifest names must be recorded (`recordBlob`) with the size it claims. Garbage collection
    /// drops a blob's record in one write transaction, so the two serialize on the database's write lock: a
    /// manifest committed first keeps its blobs, and a blob claimed first fails the publish.
    static func requireRecordedBlobs(_ db: Database, of manifest: Manifest, archiveLayers: [BlobEntry] = []) throws {
        let statement = try db.cachedStatement(sql: "SELECT size FROM blobs WHERE digest = ?")
        try manifest.requireBlobs(archiveLayers: archiveLayers) { digest in
            try Int64.fetchOne(statement, arguments: [digest.description])
        }
    }

    public func publish(_ request: PublishRequest) async throws -> PublishOutcome {
        let document = request.document
        let digest = document.digest
        return try await writing(to: request.model) { db in
            let modelID = try Self.ensureModel(db, request.model)
            let versionID = try Self.ensureVersion(db, modelID, request.model, request.version)
            if let existing = try Self.variantRow(db, versionID: versionID, name: request.variant) {
                let summary = try Self.variantSummary(existing)
                guard summary.digest == digest else {
                    throw RegistryError.alreadyPublished(
                        request.model, request.version, request.variant, as: summary.digest)
                }
                return .unchanged(summary)
            }
            try Self.insertVariant(
                db, versionID: versionID, request.variant, document, request.manifest,
                pushedArtifact: request.pushedArtifact, createdAt: Timestamp.now(), createdBy: request.actor)
            guard let row = try Self.variantRow(db, versionID: versionID, name: request.variant) else {
                throw RegistryError(.internalError, "variant vanished during publish")
            }
            try Self.audit(
                db, request.actor, .publish, request.model,
                target: "\(request.model):\(request.version)", detail: "variant \(request.variant) \(digest)")
            return .created(try Self.variantSummary(row))
        }
    }

    /// Adds a variant and the index of the files its manifest names, which must be recorded blobs.
    static func insertVariant(
        _ db: Database, versionID: Int64, _ name: VariantName, _ document: ManifestDocument, _ manifest: Manifest,
        pushedArtifact: PushedArtifact?, createdAt: String, createdBy: String
    ) throws {
        let archiveLayers = pushedArtifact?.archiveLayers(besides: manifest.files) ?? []
        try requireRecordedBlobs(db, of: manifest, archiveLayers: archiveLayers)
        try db.execute(
            sql: """
                INSERT INTO variants (version_id, name, manifest_digest, manifest, media_type, format, total_size, file_count, created_at, created_by,
                                      oci_manifest, oci_manifest_media_type, oci_config, oci_config_media_type)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                versionID, name.value, document.digest.description, Data(document.bytes), document.mediaType,
                manifest.format.rawValue, manifest.totalSize, manifest.files.count, createdAt, createdBy,
                pushedArtifact.map { Data($0.manifest.bytes) }, pushedArtifact?.manifest.mediaType,
                pushedArtifact.map { Data($0.config.bytes) }, pushedArtifact?.config.mediaType,
            ]
        )
        let variantID = db.lastInsertedRowID
        let file = try db.cachedStatement(
            sql: "INSERT INTO manifest_files (variant_id, path, digest, size, executable) VALUES (?, ?, ?, ?, ?)")
        for entry in manifest.files {
            try file.execute(
                arguments: [variantID, entry.path.value, entry.digest.description, entry.size, entry.executable])
        }
        let layer = try db.cachedStatement(
            sql: "INSERT INTO oci_archive_layers (variant_id, digest, size) VALUES (?, ?, ?)")
        for blob in archiveLayers {
            try layer.execute(arguments: [variantID, blob.digest.description, blob.size])
        }
    }

    static func ensureModel(_ db: Database, _ name: ModelName) throws -> Int64 {
        if let id = try Int64.fetchOne(
            db.cachedStatement(sql: "SELECT id FROM models WHERE name = ?"), arguments: [name.value])
        {
            return id
        }
        try db.execute(
            sql: "INSERT INTO models (name, created_at) VALUES (?, ?)", arguments: [name.value, Timestamp.now()])
        return db.lastInsertedRowID
    }

    private static func ensureVersion(_ db: Database, _ modelID: Int64, _ model: ModelName, _ version: VersionName)
        throws -> Int64
    {
        if let id = try Int64.fetchOne(
            db.cachedStatement(sql: "SELECT id FROM versions WHERE model_id = ? AND name = ?"),
            arguments: [modelID, version.value]
        ) {
            return id
        }
        try refuseDeleted(db, modelID, model, version)
        try db.execute(
            sql: "INSERT INTO versions (model_id, name, created_at) VALUES (?, ?, ?)",
            arguments: [modelID, version.value, Timestamp.now()]
        )
        return db.lastInsertedRowID
    }

    /// The columns `variantSummary` reads, by position (a lookup by name costs more than the query on the
    /// metadata routes), from `variants va`.
    static let variantColumns =
        "va.name, va.manifest_digest, va.format, va.total_size, va.file_count, va.created_at, va.created_by"
    static let variantColumnCount = 7

    static func variantRow(_ db: Database, versionID: Int64, name: VariantName) throws -> Row? {
        try Row.fetchOne(
            db.cachedStatement(
                sql: "SELECT \(variantColumns) FROM variants va WHERE va.version_id = ? AND va.name = ?"),
            arguments: [versionID, name.value]
        )
    }

    static func variantSummary(_ row: Row) throws -> VariantSummary {
        VariantSummary(
            name: try VariantName(row[0] as String),
            digest: try Digest(parsing: row[1] as String),
            format: ModelFormat(rawValue: row[2]) ?? .other,
            size: row[3],
            fileCount: row[4],
            createdAt: row[5],
            createdBy: row[6]
        )
    }

    public func listModels() async throws -> [ModelSummary] {
        try await pool.read { db in
            let rows = try Row.fetchAll(
                db.cachedStatement(
                    sql: """
                        SELECT m.id, m.name, m.created_at,
                               (SELECT COUNT(*) FROM versions v WHERE v.model_id = m.id) AS version_count,
                               (SELECT v.name FROM versions v WHERE v.model_id = m.id AND v.deprecated_at IS NULL
                                 ORDER BY v.created_at DESC, v.id DESC LIMIT 1) AS latest,
                               (SELECT COALESCE(SUM(va.total_size), 0) FROM variants va JOIN versions v ON va.version_id = v.id
                                 WHERE v.model_id = m.id) AS size
                        FROM models m ORDER BY m.name
                        """))
            return try rows.map { row in
                ModelSummary(
                    name: try ModelName(row["name"] as String),
                    createdAt: row["created_at"],
                    versionCount: row["version_count"],
                    latestVersion: try (row["latest"] as String?).map { text throws(RegistryError) in
                        try VersionName(text)
                    },
                    size: row["size"],
                    aliases: try Self.aliases(db, modelID: row["id"])
                )
            }
        }
    }

    public func model(_ name: ModelName) async throws -> ModelDetail? {
        try await pool.read { db in
            guard
                let row = try Row.fetchOne(
                    db.cachedStatement(sql: "SELECT id, created_at FROM models WHERE name = ?"), arguments: [name.value]
                )
            else {
                return nil
            }
            let modelID: Int64 = row[0]
            let aliases = try Self.aliases(db, modelID: modelID)
            let versions = try Self.versionSummaries(db, where: "v.model_id = ?", [modelID], aliases: aliases)
            return ModelDetail(name: name, createdAt: row[1], versions: versions, aliases: aliases)
        }
    }

    public func aliases(_ name: ModelName) async throws -> [AliasTarget]? {
        try await pool.read { db in
            guard
                let modelID = try Int64.fetchOne(
                    db.cachedStatement(sql: "SELECT id FROM models WHERE name = ?"), arguments: [name.value])
            else {
                return nil
            }
            return try Self.aliases(db, modelID: modelID)
        }
    }

    public func version(_ name: ModelName, _ version: VersionName) async throws -> VersionSummary? {
        try await pool.read { db in
            guard
                let row = try Row.fetchOne(
                    db.cachedStatement(
                        sql: """
                            SELECT v.id, v.model_id FROM versions v JOIN models m ON v.model_id = m.id WHERE m.name = ? AND v.name = ?
                            """), arguments: [name.value, version.value])
            else { return nil }
            return try Self.versionSummary(db, versionID: row[0], aliases: Self.aliases(db, modelID: row[1]))
        }
    }

    static func versionSummary(_ db: Database, versionID: Int64, aliases: [AliasTarget]) throws -> VersionSummary {
        guard let summary = try versionSummaries(db, where: "v.id = ?", [versionID], aliases: aliases).first else {
            throw RegistryError(.internalError, "version row \(versionID) vanished")
        }
        return summary
    }

    /// The versions `condition` selects (on `versions v`), newest first, each with its variants: two
    /// queries however many versions there are, since a model's page lists them all.
    static func versionSummaries(
        _ db: Database, where condition: String, _ arguments: StatementArguments, aliases: [AliasTarget]
    ) throws -> [VersionSummary] {
        var variants: [Int64: [VariantSummary]] = [:]
        let variantRows = try Row.fetchCursor(
            db.cachedStatement(
                sql: """
                    SELECT \(variantColumns), va.version_id FROM variants va JOIN versions v ON va.version_id = v.id
                    WHERE \(condition) ORDER BY va.name
                    """), arguments: arguments)
        while let row = try variantRows.next() {
            variants[row[variantColumnCount], default: []].append(try variantSummary(row))
        }
        return try Row.fetchAll(
            db.cachedStatement(
                sql: """
                    SELECT v.id, v.name, v.created_at, v.deprecated_at, v.deprecated_by, v.deprecation_reason FROM versions v
                    WHERE \(condition) ORDER BY v.created_at DESC, v.id DESC
                    """), arguments: arguments
        ).map { row in
            let name = try VersionName(row[1] as String)
            let versionVariants = variants[row[0]] ?? []
            return VersionSummary(
                name: name,
                createdAt: row[2],
                size: versionVariants.reduce(0) { $0 + $1.size },
                variants: versionVariants,
                aliases: aliases.filter { $0.version == name }.map(\.name),
                deprecation: deprecation(row)
            )
        }
    }

    /// The deprecation held in a row's `deprecated_at`, `deprecated_by` and `deprecation_reason` columns.
    static func deprecation(_ row: Row) -> Deprecation? {
        guard let at = row["deprecated_at"] as String? else { return nil }
        return Deprecation(at: at, by: row["deprecated_by"] ?? "", reason: row["deprecation_reason"])
    }

    public func manifest(_ name: ModelName, _ version: VersionName, _ variant: VariantName) async throws
        -> StoredManifest?
    {
        try await pool.read { db in
            try Self.storedManifest(
                db, where: "m.name = ? AND v.name = ? AND va.name = ?", [name.value, version.value, variant.value])
        }
    }

    public func manifest(_ name: ModelName, digest: Digest) async throws -> StoredManifest? {
        try await pool.read { db in
            try Self.storedManifest(
                db, where: "m.name = ? AND va.manifest_digest = ?", [name.value, digest.description])
        }
    }

    static func storedManifest(_ db: Database, where condition: String, _ arguments: StatementArguments) throws
        -> StoredManifest?
    {
        guard
            let row = try Row.fetchOne(
                db.cachedStatement(
                    sql: """
                        SELECT m.name AS model, v.name AS version, va.name AS variant, va.manifest_digest, va.manifest,
                               va.media_type, v.deprecated_at, v.deprecated_by, v.deprecation_reason, va.oci_manifest,
                               va.oci_manifest_media_type, va.oci_config, va.oci_config_media_type
                        FROM variants va JOIN versions v ON va.version_id = v.id JOIN models m ON v.model_id = m.id
                        WHERE \(condition) ORDER BY va.id LIMIT 1
                        """), arguments: arguments)
        else { return nil }
        return StoredManifest(
            model: try ModelName(row["model"] as String),
            version: try VersionName(row["version"] as String),
            variant: try VariantName(row["variant"] as String),
            digest: try Digest(parsing: row["manifest_digest"] as String),
            bytes: [UInt8](row["manifest"] as Data),
            mediaType: row["media_type"],
            deprecation: deprecation(row),
            pushedArtifact: pushedArtifact(row)
        )
    }

    /// The OCI artifact a variant row keeps, if it was pushed as one.
    static func pushedArtifact(_ row: Row) -> PushedArtifact? {
        guard let manifest = row["oci_manifest"] as Data?, let manifestType = row["oci_manifest_media_type"] as String?,
            let config = row["oci_config"] as Data?, let configType = row["oci_config_media_type"] as String?
        else { return nil }
        return PushedArtifact(
            manifest: ManifestDocument(bytes: [UInt8](manifest), mediaType: manifestType),
            config: ManifestDocument(bytes: [UInt8](config), mediaType: configType))
    }

    public func alias(_ name: ModelName, _ alias: AliasName) async throws -> AliasTarget? {
        try await aliases(name)?.first { $0.name == alias }
    }

    static func aliases(_ db: Database, modelID: Int64) throws -> [AliasTarget] {
        try Row.fetchAll(
            db.cachedStatement(
                sql: """
                    SELECT a.name, v.name AS version, a.variant, a.updated_at, a.updated_by
                    FROM aliases a JOIN versions v ON a.version_id = v.id WHERE a.model_id = ? ORDER BY a.name
                    """), arguments: [modelID]
        ).map { row in
            AliasTarget(
                name: try AliasName(row[0] as String),
                version: try VersionName(row[1] as String),
                variant: try (row[2] as String?).map { text throws(RegistryError) in try VariantName(text) },
                updatedAt: row[3],
                updatedBy: row[4]
            )
        }
    }

    public func hasTokens() async throws -> Bool {
        try await pool.read { db in
            try Bool.fetchOne(db.cachedStatement(sql: "SELECT EXISTS (SELECT 1 FROM tokens)")) ?? false
        }
    }

    public func createToken(name: TokenLabel, scope: TokenScope, secret: TokenSecret, actor: String) async throws
        -> TokenRecord
    {
        return try await writing { db in
            if try Self.activeToken(db, name: name) != nil {
                throw RegistryError(
                    .conflict, "a token named '\(name)' already exists: revoke it first or choose another name")
            }
            let now = Timestamp.now()
            try db.execute(
                sql: "INSERT INTO tokens (name, scope, hash, created_at) VALUES (?, ?, ?, ?)",
                arguments: [name.value, scope.rawValue, secret.hash, now]
            )
            try Self.audit(db, actor, .tokenCreate, nil, target: name.value, detail: "scope \(scope.rawValue)")
            return TokenRecord(name: name, scope: scope, createdAt: now, revokedAt: nil)
        }
    }

    public func installAdminToken(name: TokenLabel, secret: TokenSecret, actor: String) async throws -> Bool {
        return try await writing { db in
            if let row = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT scope, revoked_at FROM tokens WHERE hash = ?"), arguments: [secret.hash]
            ) {
                let revoked: String? = row["revoked_at"]
                let scope: String = row["scope"]
                try AdminTokenFile.checkKnown(scope: scope, revokedAt: revoked)
                return false
            }
            let now = Timestamp.now()
            if try Self.activeToken(db, name: name) != nil {
                try db.execute(
                    sql: "UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                    arguments: [now, name.value])
                try Self.audit(db, actor, .tokenRevoke, nil, target: name.value, detail: "replaced by a new token file")
            }
            try db.execute(
                sql: "INSERT INTO tokens (name, scope, hash, created_at) VALUES (?, ?, ?, ?)",
                arguments: [name.value, TokenScope.admin.rawValue, secret.hash, now]
            )
            try Self.audit(db, actor, .tokenCreate, nil, target: name.value, detail: "scope admin, from a token file")
            return true
        }
    }

    public func token(hash: String) async throws -> TokenRecord? {
        try await pool.read { db -> TokenRecord? in
            guard
                let row = try Row.fetchOne(
                    db.cachedStatement(
                        sql:
                            "SELECT name, scope, hash, created_at, revoked_at FROM tokens WHERE hash = ? AND revoked_at IS NULL"
                    ),
                    arguments: [hash]
                ), constantTimeEquals(row["hash"], hash)
            else { return nil }
            return try Self.tokenRecord(row)
        }
    }

    public func tokens() async throws -> [TokenRecord] {
        try await pool.read { db in
            try Row.fetchAll(
                db.cachedStatement(sql: "SELECT name, scope, created_at, revoked_at FROM tokens ORDER BY id")
            ).map(Self.tokenRecord)
        }
    }

    public func revokeToken(name: TokenLabel, actor: String) async throws -> TokenRecord {
        return try await writing { db in
            guard var record = try Self.activeToken(db, name: name) else {
                throw RegistryError.notFound("active token '\(name)'")
            }
            let now = Timestamp.now()
            try db.execute(
                sql: "UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                arguments: [now, name.value])
            try Self.audit(db, actor, .tokenRevoke, nil, target: name.value, detail: nil)
            record.revokedAt = now
            return record
        }
    }

    private static func activeToken(_ db: Database, name: TokenLabel) throws -> TokenRecord? {
        try Row.fetchOne(
            db.cachedStatement(
                sql: "SELECT name, scope, created_at, revoked_at FROM tokens WHERE name = ? AND revoked_at IS NULL"),
            arguments: [name.value]
        ).map(tokenRecord)
    }

    static func tokenRecord(_ row: Row) throws -> TokenRecord {
        TokenRecord(
            name: try TokenLabel(row["name"] as String),
            scope: try TokenScope(parsing: row["scope"]),
            createdAt: row["created_at"],
            revokedAt: row["revoked_at"]
        )
    }
}
