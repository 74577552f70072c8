import CacheImage
import ModelRegistryCore

/// One variant as the Hub protocol shows it: a commit (the first 40 hex digits of its manifest's digest, as
/// in the `hf` cache layout), its files, and when it was published.
struct HubSnapshot: Sendable {
    let model: ModelName
    let version: VersionName
    let variant: VariantName
    let digest: Digest
    let manifest: Manifest
    let publishedAt: String
    /// The metadata of the variant's model card (`README.md`), if it has one.
    let cardData: CardValue?

    var commit: String { HuggingFaceCache.revision(digest) }

    /// What keeping it costs, in bytes.
    var cost: Int { 512 + manifest.files.count * 256 }

    /// A model card larger than this is not read for its metadata.
    static let cardLimit: Int64 = 1 << 20

    /// The variant a revision names, read through the metadata store, with its model card's metadata.
    static func resolve(
        _ revision: String, of model: ModelName, in metadata: any MetadataStore, blobs: any BlobStore
    ) async throws -> HubSnapshot {
        guard let detail = try await metadata.model(model) else { throw HubError.repoNotFound(model.value) }
        let parsed: HubRevision
        do {
            parsed = try HubRevision(parsing: revision)
        } catch {
            throw HubError.revisionNotFound(model, revision, error.message)
        }
        let reference: ModelReference
        var variant: VariantName?
        switch parsed {
        case .latest:
            reference = ModelReference(name: model, target: .alias(.latest))
        case .commit(let commit):
            let variants = detail.versions.flatMap(\.variants)
            guard let match = variants.first(where: { $0.digest.hex.hasPrefix(commit) }) else {
                throw HubError.revisionNotFound(model, revision, "no variant has this commit")
            }
            reference = ModelReference(name: model, target: .digest(match.digest))
        case .variant(let version, let name):
            reference = ModelReference(name: model, target: .version(version))
            variant = name
        case .name(let name):
            if let alias = try? AliasName(name), detail.aliases.contains(where: { $0.name == alias }) {
                reference = ModelReference(name: model, target: .alias(alias))
            } else if let version = try? VersionName(name), detail.versions.contains(where: { $0.name == version }) {
                reference = ModelReference(name: model, target: .version(version))
            } else {
                throw HubError.revisionNotFound(model, revision, "no alias or version has this name")
            }
        }
        let stored: StoredManifest
        do {
            stored = try await metadata.resolve(reference, variant: variant)
        } catch let error as RegistryError where error.code == .notFound || error.code == .invalidReference {
            throw HubError.revisionNotFound(model, revision, error.message)
        }
        let published = detail.versions.first { $0.name == stored.version }?.variants
            .first { $0.name == stored.variant }?.createdAt
        let manifest = try stored.decoded()
        return HubSnapshot(
            model: model, version: stored.version, variant: stored.variant, digest: stored.digest,
            manifest: manifest, publishedAt: published ?? detail.createdAt,
            cardData: try await cardData(of: manifest, in: blobs))
    }

    private static func cardData(of manifest: Manifest, in blobs: any BlobStore) async throws -> CardValue? {
        guard let card = manifest.files.first(where: { $0.path.value.lowercased() == "readme.md" }),
            card.size > 0, card.size <= cardLimit
        else { return nil }
        var bytes: [UInt8] = []
        for try await chunk in try await blobs.read(card.digest, range: 0..<card.size) {
            bytes += chunk.readableBytesView
        }
        return ModelCard.metadata(String(decoding: bytes, as: UTF8.self))
    }
}
