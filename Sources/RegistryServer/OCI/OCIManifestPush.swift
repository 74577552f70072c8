import Foundation
import Hummingbird
import ModelFormats
import ModelRegistryCore
import OCIArtifacts

/// `PUT /v2/<name>/manifests/<tag>` of a model (what `oras push`, `skopeo copy`, the ModelPack tools and `kit push`
/// send): a CNCF ModelPack artifact or a KitOps ModelKit. Raw layers are files, placed by their
/// `org.cncf.model.filepath` (or title) annotation; tar layers (plain, gzip or zstd) are unpacked into files.
/// The files are inspected and checked as `modelreg push` does and published as the version and variant the tag
/// names (`VERSION`, its `default` variant, or `VERSION__VARIANT`). The manifest and config are kept as sent and
/// served under their digest, the tar layers kept with them. Anything else (a container image, an index) is
/// refused with `UNSUPPORTED`, saying what is taken; a manifest with a subject is a referrer.
struct OCIManifestPush {
    let registry: Registry

    /// The largest manifest taken, as CNCF distribution's limit.
    static let maxManifestSize = 4 << 20
    /// The largest config read into the kept artifact.
    static let maxConfigSize: Int64 = 1 << 20

    func put(_ request: Request, _ context: RegistryRequestContext, _ model: ModelName, _ reference: String)
        async throws -> Response
    {
        let bytes: [UInt8]
        do {
            bytes = Array(buffer: try await request.body.collect(upTo: Self.maxManifestSize))
        } catch {
            throw OCIError(
                .contentTooLarge, .sizeInvalid, "the manifest is larger than \(Self.maxManifestSize) bytes")
        }
        let mediaType = request.headers[.contentType].map { String($0.split(separator: ";")[0]) } ?? ""
        let manifest = try Self.decode(bytes, mediaType: mediaType)
        if let subject = manifest.subject {
            return try await putReferrer(
                ManifestDocument(bytes: bytes, mediaType: mediaType), manifest, subject: subject, context, model,
                reference)
        }
        try Self.requireModel(manifest)
        let (version, variant) = try await target(model, reference)
        let layers = try Self.layers(of: manifest)
        let config = try await configDocument(manifest.config)
        let publisher = VariantPublisher(registry: registry)
        try await publisher.checkBlobs(of: Manifest(format: .other, files: layers.files))
        let files = try await layers.files + unpack(layers.archives)
        do {
            try Manifest(format: .other, files: files).validate()
        } catch {
            throw OCIError(.badRequest, .manifestInvalid, error.message)
        }
        let inspection: Inspection
        do {
            inspection = try await publisher.inspect(files)
        } catch let error as RegistryError {
            throw OCIError(.badRequest, .manifestInvalid, "the model's files do not read as pushed: \(error.message)")
        }
        let pushed = PushedArtifact(manifest: ManifestDocument(bytes: bytes, mediaType: mediaType), config: config)
        let outcome = try await publisher.publishInspected(
            PublishRequest(
                model: model, version: version, variant: variant,
                manifest: Manifest(
                    format: ModelFormat.detect(paths: files.map(\.path)), files: files,
                    quantization: inspection.quantization, metadata: inspection.metadata),
                pushedArtifact: pushed, actor: context.identity.actor))
        if case .unchanged = outcome,
            try await registry.metadata.manifest(model, digest: outcome.variant.digest)?.pushedArtifact?.manifest
                != pushed.manifest
        {
            throw OCIError(
                .conflict, .denied,
                "\(model):\(version) variant \(variant) holds these files already, published otherwise: its artifact is served under the tag \(reference); push other files as a new version"
            )
        }
        context.logger.notice(
            "variant published over the OCI API",
            metadata: ["variant": "\(model):\(version)@\(variant)", "by": .string(context.identity.actor)])
        return Response(
            status: .created,
            headers: [
                .location: "/v2/\(model)/manifests/\(pushed.manifest.digest)",
                .dockerContentDigest: pushed.manifest.digest.description, .contentLength: "0",
                .dockerDistributionAPIVersion: "registry/2.0",
            ])
    }

    /// The version and variant a pushed tag names; an alias, `latest`, a digest or a runnable image's tag are no
    /// place to publish.
    private func target(_ model: ModelName, _ reference: String) async throws -> (VersionName, VariantName) {
        guard OCITags.isValid(reference) else {
            throw OCIError(
                .badRequest, .unsupported,
                "push a model under a tag naming its version (VERSION or VERSION__VARIANT), not '\(reference.prefix(140))'"
            )
        }
        if reference == AliasName.latest.value || reference.hasSuffix(OCITags.runnableImageSuffix) {
            throw OCIError(
                .badRequest, .unsupported,
                "'\(reference)' is computed by the registry: push under a tag naming a version (VERSION or VERSION__VARIANT)"
            )
        }
        if let alias = try? AliasName(reference), try await registry.metadata.alias(model, alias) != nil {
            throw OCIError(
                .conflict, .denied,
                "'\(reference)' is an alias of \(model): push under a version tag, then move it with `modelreg alias set \(model) \(reference) VERSION`"
            )
        }
        var versionText = reference
        var variant = VariantName.default
        if let separator = reference.range(of: OCITags.variantSeparator, options: .backwards) {
            versionText = String(reference[..<separator.lowerBound])
            do {
                variant = try VariantName(reference[separator.upperBound...])
            } catch {
                throw OCIError(.badRequest, .unsupported, error.message)
            }
        }
        do {
            return (try VersionName(versionText), variant)
        } catch {
            throw OCIError(.badRequest, .unsupported, error.message)
        }
    }

    /// What a push may be, for the messages of refusals.
    static let accepted =
        "a CNCF ModelPack artifact (an OCI image manifest with artifactType \(OCIMediaType.modelManifest) or config \(OCIMediaType.modelConfig), one raw layer (application/vnd.cncf.model.*.v1.raw) a file or tar layers of files) or a KitOps ModelKit (config \(OCIMediaType.modelKitConfig))"

    static func decode(_ bytes: [UInt8], mediaType: String) throws -> OCIImageManifest {
        guard mediaType == OCIMediaType.imageManifest else {
            throw OCIError(
                .badRequest, .unsupported,
                "a manifest of type '\(mediaType.prefix(100))' is not taken: this registry holds models, pushed as \(accepted)"
            )
        }
        let manifest: OCIImageManifest
        do {
            manifest = try JSONDecoder().decode(OCIImageManifest.self, from: Data(bytes))
        } catch {
            throw OCIError(.badRequest, .manifestInvalid, "the manifest is not an OCI image manifest: \(error)")
        }
        guard manifest.schemaVersion == 2, manifest.mediaType == nil || manifest.mediaType == mediaType else {
            throw OCIError(
                .badRequest, .manifestInvalid, "the manifest's schemaVersion or mediaType disagrees with its type")
        }
        return manifest
    }

    /// A manifest without a subject must be a model.
    static func requireModel(_ manifest: OCIImageManifest) throws {
        let types = [manifest.artifactType, manifest.config.mediaType]
        guard
            types.contains(OCIMediaType.modelManifest) || types.contains(OCIMediaType.modelConfig)
                || types.contains(OCIMediaType.modelKitManifest) || types.contains(OCIMediaType.modelKitConfig)
        else {
            throw OCIError(
                .badRequest, .unsupported,
                "this is not a model (config \(manifest.config.mediaType.prefix(100))): a container image is not taken; push \(accepted)"
            )
        }
    }

    /// A manifest with a subject (a signature, an attestation, an SBOM) of a document of one of the model's
    /// variants, pushed by its digest: kept with that variant, listed by the referrers API, gone with it.
    private func putReferrer(
        _ document: ManifestDocument, _ manifest: OCIImageManifest, subject: OCIDescriptor,
        _ context: RegistryRequestContext, _ model: ModelName, _ reference: String
    ) async throws -> Response {
        guard reference == document.digest.description else {
            throw OCIError(
                .badRequest, .unsupported,
                "push a manifest with a subject by its digest (\(document.digest)), not under '\(reference.prefix(140))': the referrers API lists it"
            )
        }
        let subjectDigest: Digest
        do {
            subjectDigest = try Digest(parsing: subject.digest)
        } catch {
            throw OCIError(.badRequest, .manifestInvalid, "the subject's digest: \(error.message)")
        }
        let routes = OCIRoutes(registry: registry)
        let repository = try await routes.repository(model)
        var owner = repository.variants.first { $0.artifact.manifest.digest == subjectDigest }
        if owner == nil {
            owner = try await routes.runnableImages(repository).first { _, image in
                ([image.index] + image.manifests).contains { $0.digest == subjectDigest }
            }?.0
        }
        guard let owner else {
            throw OCIError(
                .badRequest, .manifestInvalid,
                "the subject \(subjectDigest) is no manifest of \(model): a referrer is kept with the variant it refers to"
            )
        }
        var blobs: [BlobEntry] = []
        for descriptor in [manifest.config] + manifest.layers {
            do {
                blobs.append(BlobEntry(digest: try Digest(parsing: descriptor.digest), size: descriptor.size))
            } catch {
                throw OCIError(.badRequest, .manifestInvalid, "a blob's digest: \(error.message)")
            }
        }
        let referrer = StoredReferrer(
            document: document, subject: subjectDigest,
            artifactType: manifest.artifactType ?? manifest.config.mediaType, blobs: blobs,
            createdAt: Timestamp.now(), createdBy: context.identity.actor)
        // Stored, as the spec requires of every blob a manifest names (MANIFEST_BLOB_UNKNOWN); the metadata store
        // checks its records of them again.
        var stored: [Digest: Int64] = [:]
        for blob in blobs { stored[blob.digest] = try await registry.blobs.info(blob.digest)?.size }
        try referrer.requireBlobs { stored[$0] }
        try await registry.metadata.recordReferrer(referrer, of: model, owner.version, owner.name)
        return Response(
            status: .created,
            headers: [
                .location: "/v2/\(model)/manifests/\(document.digest)",
                .dockerContentDigest: document.digest.description,
                .ociSubject: subjectDigest.description, .contentLength: "0",
                .dockerDistributionAPIVersion: "registry/2.0",
            ])
    }

    /// What a manifest's layers hold: raw layers are files, placed by their path annotation; archive layers are
    /// unpacked into files once their blobs are known to be stored.
    struct Layers {
        var files: [ManifestFile] = []
        var archives: [(index: Int, blob: BlobEntry)] = []
    }

    static func layers(of manifest: OCIImageManifest) throws -> Layers {
        guard !manifest.layers.isEmpty else {
            throw OCIError(.badRequest, .manifestInvalid, "the artifact has no layers: a model has files")
        }
        var layers = Layers()
        for (index, layer) in manifest.layers.enumerated() {
            let digest: Digest
            do {
                digest = try Digest(parsing: layer.digest)
            } catch {
                throw OCIError(.badRequest, .manifestInvalid, "layer \(index): \(error.message)")
            }
            if OCIMediaType.isArchiveLayer(layer.mediaType) {
                layers.archives.append((index, BlobEntry(digest: digest, size: layer.size)))
                continue
            }
            guard ModelPackLayerKind(rawMediaType: layer.mediaType) != nil else {
                throw OCIError(
                    .badRequest, .unsupported,
                    "layer \(index) is \(layer.mediaType.prefix(100)): a model's layers are raw files (application/vnd.cncf.model.{weight,weight.config,doc,code,dataset}.v1.raw) or tar archives of them (….v1.tar, +gzip or +zstd, as ModelPack and KitOps write)"
                )
            }
            guard let path = layer.annotations?[OCIAnnotation.filepath] ?? layer.annotations?[OCIAnnotation.title]
            else {
                throw OCIError(
                    .badRequest, .manifestInvalid,
                    "layer \(index) (\(layer.digest)) names no path: annotate it with \(OCIAnnotation.filepath) or \(OCIAnnotation.title)"
                )
            }
            do {
                layers.files.append(ManifestFile(path: try ManifestPath(path), digest: digest, size: layer.size))
            } catch {
                throw OCIError(.badRequest, .manifestInvalid, "layer \(index): \(error.message)")
            }
        }
        return layers
    }

    /// The files of the archive layers, each stored as a blob; the layers must be stored, as the spec requires of
    /// every blob a manifest names.
    private func unpack(_ archives: [(index: Int, blob: BlobEntry)]) async throws -> [ManifestFile] {
        for (index, blob) in archives {
            guard let info = try await registry.blobs.info(blob.digest), info.size == blob.size else {
                throw OCIError(
                    .badRequest, .manifestBlobUnknown,
                    "layer \(index), \(blob.digest) (\(blob.size) bytes), is not uploaded: push the blobs before the manifest"
                )
            }
        }
        var files: [ManifestFile] = []
        for (index, blob) in archives {
            do {
                files += try await ArchiveLayerIntake(registry: registry).files(of: blob.digest, size: blob.size)
            } catch let error as RegistryError {
                guard [.invalidPath, .invalidManifest].contains(error.code) else { throw error }
                throw OCIError(.badRequest, .manifestInvalid, "layer \(index), \(blob.digest): \(error.message)")
            }
        }
        return files
    }

    /// The config's bytes, which must be stored, as the spec requires of every blob a manifest names.
    private func configDocument(_ descriptor: OCIDescriptor) async throws -> ManifestDocument {
        let digest: Digest
        do {
            digest = try Digest(parsing: descriptor.digest)
        } catch {
            throw OCIError(.badRequest, .manifestInvalid, "the config's digest: \(error.message)")
        }
        guard let info = try await registry.blobs.info(digest), info.size == descriptor.size else {
            throw OCIError(
                .badRequest, .manifestBlobUnknown,
                "the config \(digest) (\(descriptor.size) bytes) is not uploaded: push the blobs before the manifest")
        }
        guard info.size <= Self.maxConfigSize else {
            throw OCIError(.badRequest, .manifestInvalid, "the config is larger than \(Self.maxConfigSize) bytes")
        }
        var bytes: [UInt8] = []
        for try await chunk in try await registry.blobs.read(digest, range: 0..<info.size) {
            bytes += chunk.readableBytesView
        }
        return ManifestDocument(bytes: bytes, mediaType: descriptor.mediaType)
    }
}
