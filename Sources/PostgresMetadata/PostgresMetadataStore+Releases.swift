import Foundation
import Logging
import ModelRegistryCore
import PostgresNIO

/// Alias moves, deprecation, deletion, the audit log and tokens. Each change and its history and audit rows
/// are written in one transaction, holding the model's row lock, so history never disagrees with the state
/// it describes and a compare-and-swap has one winner.
extension PostgresMetadataStore {
    public func aliases(_ name: ModelName) async throws -> [AliasTarget]? {
        try await readingSnapshot { connection in
            guard
                let modelID = try await Self.modelID(connection, name, logger: self.logger)
            else { return nil }
            return try await Self.aliases(connection, modelID: modelID, logger: self.logger)[modelID] ?? []
        }
    }

    public func alias(_ name: ModelName, _ alias: AliasName) async throws -> AliasTarget? {
        try await aliases(name)?.first { $0.name == alias }
    }

    public func moveAlias(_ move: AliasMove) async throws -> AliasTarget {
        try ReleaseRules.checkMovable(move)
        return try await writing { connection in
            let modelID = try await Self.lockModel(connection, move.model, creating: false, logger: self.logger)
            let aliases = try await Self.aliases(connection, modelID: modelID, logger: self.logger)[modelID] ?? []
            let current = aliases.first { $0.name == move.alias }
            try ReleaseRules.checkExpectation(of: move, current: current)
            let history = try await Self.history(connection, modelID, alias: move.alias, logger: self.logger)
            let destination = try ReleaseRules.destination(of: move, current: current, aliases: aliases) { history }
            let target = destination.target
            let versionID = try await Self.existingVersionID(
                connection, modelID, move.model, target.version, logger: self.logger)
            if let variant = target.variant,
                try await Self.variantSummaries(
                    connection, "WHERE va.version_id = \(versionID) AND va.name = \(variant.value)", logger: self.logger
                ).isEmpty
            {
                throw RegistryError.notFound("variant '\(variant)' of \(move.model):\(target.version)")
            }
            if let current, current.version == target.version, current.variant == target.variant { return current }
            let now = Timestamp.now()
            try await connection.query(
                """
                INSERT INTO aliases (model_id, name, version_id, variant, updated_at, updated_by)
                VALUES (\(modelID), \(move.alias.value), \(versionID), \(target.variant?.value), \(now), \(move.actor))
                ON CONFLICT (model_id, name) DO UPDATE SET version_id = excluded.version_id,
                    variant = excluded.variant, updated_at = excluded.updated_at, updated_by = excluded.updated_by
                """, logger: self.logger)
            try await connection.query(
                """
                INSERT INTO alias_history (model_id, alias, action, from_version, from_variant, to_version, to_variant,
                                           actor, at)
                VALUES (\(modelID), \(move.alias.value), \(destination.action.rawValue), \(current?.version.value),
                        \(current?.variant?.value), \(target.version.value), \(target.variant?.value), \(move.actor),
                        \(now))
                """, logger: self.logger)
            try await Self.audit(
                connection, move.actor, destination.auditAction, move.model, target: "\(move.model)@\(move.alias)",
                detail: ReleaseRules.moveDetail(from: current, to: destination), logger: self.logger)
            return AliasTarget(
                name: move.alias, version: target.version, variant: target.variant, updatedAt: now,
                updatedBy: move.actor)
        }
    }

    public func aliasHistory(_ name: ModelName, _ alias: AliasName) async throws -> [AliasHistoryEntry]? {
        try await readingSnapshot { connection in
            guard
                let modelID = try await Self.modelID(connection, name, logger: self.logger)
            else { return nil }
            return try await Self.history(connection, modelID, alias: alias, logger: self.logger)
        }
    }

    /// Moves of one alias of the model, or of all its aliases (nil), oldest first.
    static func history(_ connection: PostgresConnection, _ modelID: Int64, alias: AliasName?, logger: Logger)
        async throws -> [AliasHistoryEntry]
    {
        try await connection.rows(
            """
            SELECT id, alias, action, from_version, from_variant, to_version, to_variant, actor, at
            FROM alias_history WHERE model_id = \(modelID) AND (\(alias?.value)::text IS NULL OR alias = \(alias?.value))
            ORDER BY id
            """, (Int64, String, String, String?, String?, String, String?, String, String).self, logger: logger
        ).map { id, alias, action, fromVersion, fromVariant, toVersion, toVariant, actor, at in
            AliasHistoryEntry(
                id: id, alias: try AliasName(alias), action: AliasHistoryEntry.Action(rawValue: action) ?? .set,
                fromVersion: try fromVersion.map { text throws(RegistryError) in try VersionName(text) },
                fromVariant: try fromVariant.map { text throws(RegistryError) in try VariantName(text) },
                toVersion: try VersionName(toVersion),
                toVariant: try toVariant.map { text throws(RegistryError) in try VariantName(text) }, actor: actor,
                at: at)
        }
    }

    public func deprecate(_ name: ModelName, _ version: VersionName, reason: String?, actor: String) async throws
        -> VersionSummary
    {
        try await writing { connection in
            let modelID = try await Self.lockModel(connection, name, creating: false, logger: self.logger)
            let versionID = try await Self.existingVersionID(connection, modelID, name, version, logger: self.logger)
            try await connection.query(
                """
                UPDATE versions SET deprecated_at = COALESCE(deprecated_at, \(Timestamp.now())), deprecated_by = \(actor),
                    deprecation_reason = \(reason) WHERE id = \(versionID)
                """, logger: self.logger)
            try await Self.audit(
                connection, actor, .deprecate, name, target: "\(name):\(version)", detail: reason, logger: self.logger)
            let aliases = try await Self.aliases(connection, modelID: modelID, logger: self.logger)[modelID] ?? []
            guard
                let summary = try await Self.versionSummaries(
                    connection, "WHERE v.id = \(versionID)", aliases: aliases, logger: self.logger
                ).first
            else {
                throw RegistryError(.internalError, "version row \(versionID) vanished")
            }
            return summary
        }
    }

    public func deleteVersion(_ name: ModelName, _ version: VersionName, actor: String) async throws -> DeletedVersion {
        try await writing { connection in
            let modelID = try await Self.lockModel(connection, name, creating: false, logger: self.logger)
            let versionID = try await Self.existingVersionID(connection, modelID, name, version, logger: self.logger)
            let aliases = try await Self.aliases(connection, modelID: modelID, logger: self.logger)[modelID] ?? []
            try ReleaseRules.checkDeletable(name, version, aliases: aliases)
            let variants = try await Self.variantSummaries(
                connection, "WHERE va.version_id = \(versionID)", logger: self.logger
            ).map(\.summary)
            try await Self.deleteReferrers(connection, versionID: versionID, logger: self.logger)
            try await connection.query(
                """
                DELETE FROM oci_archive_layers
                WHERE variant_id IN (SELECT id FROM variants WHERE version_id = \(versionID))
                """, logger: self.logger)
            try await connection.query(
                """
                DELETE FROM manifest_files WHERE variant_id IN (SELECT id FROM variants WHERE version_id = \(versionID))
                """, logger: self.logger)
            try await connection.query("DELETE FROM variants WHERE version_id = \(versionID)", logger: self.logger)
            try await connection.query("DELETE FROM versions WHERE id = \(versionID)", logger: self.logger)
            let now = Timestamp.now()
            try await connection.query(
                """
                INSERT INTO deleted_versions (model_id, name, deleted_at, deleted_by)
                VALUES (\(modelID), \(version.value), \(now), \(actor))
                """, logger: self.logger)
            try await Self.dropOrphanedCacheImages(connection, modelID: modelID, logger: self.logger)
            let size = variants.reduce(0) { $0 + $1.size }
            try await Self.audit(
                connection, actor, .delete, name, target: "\(name):\(version)",
                detail: "variants \(variants.map(\.name.value).joined(separator: ", ")); \(size) bytes",
                logger: self.logger)
            return DeletedVersion(
                model: name, version: version, variants: variants.map(\.name), manifests: variants.map(\.digest),
                size: size, deletedAt: now)
        }
    }

    /// The version's row id; a deleted version is a conflict that says so rather than a plain 404.
    static func existingVersionID(
        _ connection: PostgresConnection, _ modelID: Int64, _ model: ModelName, _ version: VersionName,
        logger: Logger
    ) async throws -> Int64 {
        if let id = try await versionID(connection, modelID, version, logger: logger) { return id }
        try await refuseDeleted(connection, modelID, model, version, logger: logger)
        throw RegistryError.notFound("version \(model):\(version)")
    }

    public func auditLog(_ query: AuditQuery) async throws -> [AuditEntry] {
        try await reading { connection in
            try await Self.auditEntries(
                connection,
                """
                SELECT id, at, actor, action, model, target, detail FROM audit_log
                WHERE (\(query.model?.value)::text IS NULL OR model = \(query.model?.value))
                  AND (\(query.before)::bigint IS NULL OR id < \(query.before))
                ORDER BY id DESC LIMIT \(Int64(query.limit))
                """, logger: self.logger)
        }
    }

    static func auditEntries(_ connection: PostgresConnection, _ query: PostgresQuery, logger: Logger) async throws
        -> [AuditEntry]
    {
        // A loop, not a map with a typed-throws closure inside: Swift 6.3.1's optimizer crashed (signal 11)
        // specializing that form, so release builds failed.
        var entries: [AuditEntry] = []
        let rows = try await connection.rows(
            query, (Int64, String, String, String, String?, String, String?).self, logger: logger)
        for (id, at, actor, action, model, target, detail) in rows {
            guard let kind = AuditEntry.Action(rawValue: action) else {
                throw RegistryError(
                    .internalError, "the audit log holds an action this version does not know: '\(action)'")
            }
            var name: ModelName?
            if let model { name = try ModelName(model) }
            entries.append(
                AuditEntry(id: id, at: at, actor: actor, action: kind, model: name, target: target, detail: detail))
        }
        return entries
    }

    static func audit(
        _ connection: PostgresConnection, _ actor: String, _ action: AuditEntry.Action, _ model: ModelName?,
        target: String, detail: String?, logger: Logger
    ) async throws {
        try await connection.query(
            """
            INSERT INTO audit_log (at, actor, action, model, target, detail)
            VALUES (\(Timestamp.now()), \(actor), \(action.rawValue), \(model?.value), \(target), \(detail))
            """, logger: logger)
    }

    // MARK: Tokens

    /// Token changes serialize on an advisory lock of their own, so two creations of one name cannot both
    /// pass the check for an active token of that name.
    static let tokenLock: Int64 = 0x6d6f_6465_6c74_6f6b

    public func hasTokens() async throws -> Bool {
        try await reading { connection in
            try await connection.values("SELECT EXISTS (SELECT 1 FROM tokens)", Bool.self, logger: self.logger).first
                ?? false
        }
    }

    public func createToken(name: TokenLabel, scope: TokenScope, secret: TokenSecret, actor: String) async throws
        -> TokenRecord
    {
        try await writing { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.tokenLock))", logger: self.logger)
            if try await Self.activeToken(connection, name: name, logger: self.logger) != nil {
                throw RegistryError(
                    .conflict, "a token named '\(name)' already exists: revoke it first or choose another name")
            }
            let now = Timestamp.now()
            try await connection.query(
                """
                INSERT INTO tokens (name, scope, hash, created_at) VALUES (\(name.value), \(scope.rawValue), \(secret.hash), \(now))
                """, logger: self.logger)
            try await Self.audit(
                connection, actor, .tokenCreate, nil, target: name.value, detail: "scope \(scope.rawValue)",
                logger: self.logger)
            return TokenRecord(name: name, scope: scope, createdAt: now, revokedAt: nil)
        }
    }

    public func installAdminToken(name: TokenLabel, secret: TokenSecret, actor: String) async throws -> Bool {
        try await writing { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.tokenLock))", logger: self.logger)
            if let (scope, revoked) = try await connection.rows(
                "SELECT scope, revoked_at FROM tokens WHERE hash = \(secret.hash)", (String, String?).self,
                logger: self.logger
            ).first {
                try AdminTokenFile.checkKnown(scope: scope, revokedAt: revoked)
                return false
            }
            let now = Timestamp.now()
            if try await Self.activeToken(connection, name: name, logger: self.logger) != nil {
                try await connection.query(
                    "UPDATE tokens SET revoked_at = \(now) WHERE name = \(name.value) AND revoked_at IS NULL",
                    logger: self.logger)
                try await Self.audit(
                    connection, actor, .tokenRevoke, nil, target: name.value, detail: "replaced by a new token file",
                    logger: self.logger)
            }
            try await connection.query(
                """
                INSERT INTO tokens (name, scope, hash, created_at)
                VALUES (\(name.value), \(TokenScope.admin.rawValue), \(secret.hash), \(now))
                """, logger: self.logger)
            try await Self.audit(
                connection, actor, .tokenCreate, nil, target: name.value, detail: "scope admin, from a token file",
                logger: self.logger)
            return true
        }
    }

    public func token(hash: String) async throws -> TokenRecord? {
        try await reading { connection in
            guard
                let (name, scope, stored, createdAt) = try await connection.rows(
                    """
                    SELECT name, scope, hash, created_at FROM tokens WHERE hash = \(hash) AND revoked_at IS NULL
                    """, (String, String, String, String).self, logger: self.logger
                ).first, constantTimeEquals(stored, hash)
            else { return nil }
            return TokenRecord(name: try TokenLabel(name), scope: try TokenScope(parsing: scope), createdAt: createdAt)
        }
    }

    public func tokens() async throws -> [TokenRecord] {
        try await reading { connection in
            try await Self.tokenRows(connection, logger: self.logger).map(\.record)
        }
    }

    /// Every token, oldest first, with the hash of its secret.
    static func tokenRows(_ connection: PostgresConnection, logger: Logger) async throws -> [MetadataExport.Token] {
        try await connection.rows(
            "SELECT name, scope, hash, created_at, revoked_at FROM tokens ORDER BY id",
            (String, String, String, String, String?).self, logger: logger
        ).map { name, scope, hash, createdAt, revokedAt in
            MetadataExport.Token(
                record: TokenRecord(
                    name: try TokenLabel(name), scope: try TokenScope(parsing: scope), createdAt: createdAt,
                    revokedAt: revokedAt),
                hash: hash)
        }
    }

    public func revokeToken(name: TokenLabel, actor: String) async throws -> TokenRecord {
        try await writing { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.tokenLock))", logger: self.logger)
            guard var record = try await Self.activeToken(connection, name: name, logger: self.logger) else {
                throw RegistryError.notFound("active token '\(name)'")
            }
            let now = Timestamp.now()
            try await connection.query(
                "UPDATE tokens SET revoked_at = \(now) WHERE name = \(name.value) AND revoked_at IS NULL",
                logger: self.logger)
            try await Self.audit(
                connection, actor, .tokenRevoke, nil, target: name.value, detail: nil, logger: self.logger)
            record.revokedAt = now
            return record
        }
    }

    private static func activeToken(_ connection: PostgresConnection, name: TokenLabel, logger: Logger) async throws
        -> TokenRecord?
    {
        try await connection.rows(
            "SELECT scope, created_at FROM tokens WHERE name = \(name.value) AND revoked_at IS NULL",
            (String, String).self, logger: logger
        ).first.map { scope, createdAt in
            TokenRecord(name: name, scope: try TokenScope(parsing: scope), createdAt: createdAt)
        }
    }
}
