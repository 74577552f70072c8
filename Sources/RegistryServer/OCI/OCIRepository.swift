import CacheImage
import ModelRegistryCore
import OCIArtifacts

/// A model as an OCI repository: each variant as a ModelPack artifact, and the tags that name them. Read
/// once for the model and kept until it changes; a runnable image is added per request, as its layer's
/// digest becomes known when the cache image builder has hashed it.
struct OCIRepository: Sendable {
    /// A variant's artifact: the one it was pushed as, else the one the registry writes for it.
    struct Artifact: Sendable {
        let manifest: ManifestDocument
        let config: ManifestDocument
    }

    struct Variant: Sendable {
        let model: ModelName
        let version: VersionName
        let name: VariantName
        let createdAt: String
        let manifestDigest: Digest
        let manifest: Manifest
        let artifact: Artifact

        /// The runnable image of this variant once the layer's digest (`models` layout) is known.
        func runnableImage(layer: Digest) -> RunnableModelImage {
            RunnableModelImage(
                layer: layer, size: layerImage.size, manifestDigest: manifestDigest, version: version,
                createdAt: createdAt)
        }

        /// The `models` layout's archive, the runnable image's one layer.
        var layerImage: CacheImage {
            CacheImage(model: model, manifestDigest: manifestDigest, manifest: manifest, layout: .models)
        }
    }

    let model: ModelName
    let variants: [Variant]
    let tags: OCITags
    /// Manifests pushed with a subject of one of its variants' documents, oldest first.
    let referrers: [StoredReferrer]

    /// What keeping it costs, in bytes.
    var cost: Int {
        variants.reduce(1024) { $0 + 1024 + $1.artifact.manifest.bytes.count * 2 }
            + referrers.reduce(0) { $0 + 512 + $1.document.bytes.count }
    }

    static func read(_ model: ModelName, from metadata: any MetadataStore) async throws -> OCIRepository {
        guard let detail = try await metadata.model(model) else { throw OCIError.nameUnknown(model) }
        var variants: [Variant] = []
        for version in detail.versions {
            for variant in version.variants {
                guard let stored = try await metadata.manifest(model, version.name, variant.name) else { continue }
                let manifest = try stored.decoded()
                let written = ModelPackArtifact(
                    model: model, version: version.name, variant: variant.name, manifest: manifest,
                    manifestDigest: stored.digest, createdAt: variant.createdAt)
                variants.append(
                    Variant(
                        model: model, version: version.name, name: variant.name, createdAt: variant.createdAt,
                        manifestDigest: stored.digest, manifest: manifest,
                        artifact: Artifact(
                            manifest: stored.pushedArtifact?.manifest ?? written.manifest,
                            config: stored.pushedArtifact?.config ?? written.config)))
            }
        }
        return OCIRepository(
            model: model, variants: variants, tags: OCITags(detail), referrers: try await metadata.referrers(model))
    }

    /// The variant a tag names; nil for a tag the model does not have.
    func variant(tagged tag: String) -> Variant? {
        guard let target = tags.targets[tag] else { return nil }
        return variants.first { $0.version == target.version && $0.name == target.variant }
    }
}
