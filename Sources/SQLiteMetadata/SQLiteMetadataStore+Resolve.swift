import GRDB
import ModelRegistryCore

/// Reference resolution in one read transaction: an init container's first request, so it touches only
/// the rows it needs and never sees an alias move half-applied.
extension SQLiteMetadataStore {
    public func resolve(_ reference: ModelReference, variant requested: VariantName?) async throws -> StoredManifest {
        try ReleaseRules.checkResolvable(reference, variant: requested)
        return try await pool.read { db in
            let name = reference.name
            guard
                let modelID = try Int64.fetchOne(
                    db.cachedStatement(sql: "SELECT id FROM models WHERE name = ?"), arguments: [name.value])
            else {
                throw RegistryError.notFound("model \(name)")
            }
            switch reference.target {
            case .model:
                throw RegistryError(.internalError, "\(reference) passed the check of resolvable references")
            case .digest(let digest):
                guard
                    let stored = try Self.storedManifest(
                        db, where: "va.manifest_digest = ? AND m.id = ?", [digest.description, modelID])
                else {
                    throw RegistryError.notFound("manifest \(reference)")
                }
                return stored
            case .version(let version):
                return try Self.pick(db, modelID, name, version, requested, shownAs: reference)
            case .alias(let alias) where alias == .latest:
                guard
                    let newest = try String.fetchOne(
                        db.cachedStatement(
                            sql: """
                                SELECT name FROM versions WHERE model_id = ? AND deprecated_at IS NULL ORDER BY created_at DESC, id DESC LIMIT 1
                                """), arguments: [modelID])
                else {
                    throw RegistryError.notFound("\(reference) (every version of \(name) is deprecated or deleted)")
                }
                return try Self.pick(db, modelID, name, try VersionName(newest), requested, shownAs: reference)
            case .alias(let alias):
                guard
                    let row = try Row.fetchOne(
                        db.cachedStatement(
                            sql: """
                                SELECT v.name AS version, a.variant FROM aliases a JOIN versions v ON a.version_id = v.id
                                WHERE a.model_id = ? AND a.name = ?
                                """), arguments: [modelID, alias.value])
                else {
                    throw RegistryError.notFound("alias '\(alias)' of model \(name)")
                }
                let pinned = try (row["variant"] as String?).map { text throws(RegistryError) in try VariantName(text) }
                return try Self.pick(
                    db, modelID, name, try VersionName(row["version"] as String), requested ?? pinned,
                    shownAs: reference)
            }
        }
    }

    private static func pick(
        _ db: Database, _ modelID: Int64, _ name: ModelName, _ version: VersionName, _ requested: VariantName?,
        shownAs reference: ModelReference
    ) throws -> StoredManifest {
        guard
            let versionID = try Int64.fetchOne(
                db.cachedStatement(sql: "SELECT id FROM versions WHERE model_id = ? AND name = ?"),
                arguments: [modelID, version.value]
            )
        else {
            throw RegistryError.notFound("version \(name):\(version)")
        }
        let variants = try String.fetchAll(
            db.cachedStatement(sql: "SELECT name FROM variants WHERE version_id = ? ORDER BY name"),
            arguments: [versionID]
        ).map { text throws(RegistryError) in try VariantName(text) }
        let chosen = try ReleaseRules.chooseVariant(requested, among: variants, of: name, version, shownAs: reference)
        guard
            let stored = try storedManifest(db, where: "va.version_id = ? AND va.name = ?", [versionID, chosen.value])
        else {
            throw RegistryError.notFound("variant '\(chosen)' of \(name):\(version)")
        }
        return stored
    }
}
