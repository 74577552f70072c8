import ModelRegistryCore

/// The config of a CNCF ModelPack artifact (`application/vnd.cncf.model.config.v1+json`): what the model is,
/// what its weights are, and the digests of its layers.
public struct ModelPackConfig: Codable, Hashable, Sendable {
    public struct Descriptor: Codable, Hashable, Sendable {
        public var name: String?
        public var version: String?
        public var revision: String?
        public var title: String?
        public var createdAt: String?
    }

    public struct Details: Codable, Hashable, Sendable {
        public var architecture: String?
        public var format: String?
        public var paramSize: String?
        public var precision: String?
        public var quantization: String?
    }

    public struct FileSystem: Codable, Hashable, Sendable {
        public var type: String
        public var diffIds: [String]
    }

    public var descriptor: Descriptor
    public var config: Details
    public var modelfs: FileSystem
}

/// One variant as a ModelPack artifact: an image manifest whose layers are the variant's files as raw
/// layers, each the stored blob itself, named by its path, and whose config describes the model. Built from
/// what the registry stores and nothing else, so the same variant always gives the same bytes: a tag's
/// digest moves only when the tag is moved.
public struct ModelPackArtifact: Sendable {
    public let manifest: ManifestDocument
    public let config: ManifestDocument

    public init(
        model: ModelName, version: VersionName, variant: VariantName, manifest files: Manifest,
        manifestDigest: Digest, createdAt: String
    ) {
        let layers = files.files.map { file in
            OCIDescriptor(
                mediaType: ModelPackLayerKind(of: file, in: files).rawMediaType, digest: file.digest, size: file.size,
                annotations: [OCIAnnotation.filepath: file.path.value, OCIAnnotation.title: file.path.value])
        }
        let metadata = files.metadata
        let config = ModelPackConfig(
            descriptor: .init(
                name: model.value, version: version.value, revision: manifestDigest.description,
                title: "\(model.value):\(version.value) (\(variant.value))", createdAt: createdAt),
            config: .init(
                architecture: metadata?.architecture, format: files.format.rawValue,
                paramSize: metadata?.parameterCount.map(Self.paramSizeText),
                precision: metadata.flatMap(Self.precision),
                quantization: files.quantization.map { quantization in
                    quantization.bits.map { "\(quantization.method)-int\($0)" } ?? quantization.method
                }),
            modelfs: .init(type: "layers", diffIds: files.files.map(\.digest.description)))
        self.config = ManifestDocument(encoding: config, mediaType: OCIMediaType.modelConfig)
        self.manifest = ManifestDocument(
            encoding: OCIImageManifest(
                artifactType: OCIMediaType.modelManifest, config: OCIDescriptor(self.config), layers: layers,
                annotations: [
                    OCIAnnotation.created: createdAt, OCIAnnotation.version: version.value,
                    OCIAnnotation.manifestDigest: manifestDigest.description,
                ]),
            mediaType: OCIMediaType.imageManifest)
    }

    /// `7.6b`, `125m`: three significant digits at most, as ModelPack's examples write sizes.
    public static func paramSizeText(_ count: Int64) -> String {
        let units: [(Int64, String)] = [(1_000_000_000_000, "t"), (1_000_000_000, "b"), (1_000_000, "m"), (1_000, "k")]
        // The largest unit the count reaches once rounded to three digits (999,999 is `1m`, not `1000k`).
        guard let (scale, unit) = units.first(where: { count >= $0.0 - $0.0 / 2000 }) else { return String(count) }
        // In tenths or hundredths of the unit, rounded, so the text never depends on floating point.
        let decimals = count / scale >= 100 ? 0 : count / scale >= 10 ? 1 : 2
        let step = decimals == 0 ? scale : decimals == 1 ? scale / 10 : scale / 100
        let rounded = (count + step / 2) / step
        var text = String(rounded)
        if decimals > 0 {
            while text.count <= decimals { text = "0" + text }
            text.insert(".", at: text.index(text.endIndex, offsetBy: -decimals))
            while text.hasSuffix("0") { text.removeLast() }
            if text.hasSuffix(".") { text.removeLast() }
        }
        return text + unit
    }

    /// config.json's `torch_dtype`, else the dtype that takes the most bytes.
    static func precision(_ metadata: ModelMetadata) -> String? {
        if let dtype = metadata.torchDtype { return dtype }
        return metadata.dtypeBytes.max { ($0.value, $1.key) < ($1.value, $0.key) }?.key.lowercased()
    }
}

/// One variant as a runnable image: an image index with a manifest for each platform, all with the one
/// uncompressed tar layer of the `models` cache image layout (the files under `/models`), which the registry
/// streams from the blobs. containerd mounts it as an image volume; KServe runs it as a modelcar.
public struct RunnableModelImage: Sendable {
    public static let platforms = [OCIPlatform(architecture: "amd64"), OCIPlatform(architecture: "arm64")]

    public let index: ManifestDocument
    public let manifests: [ManifestDocument]
    public let configs: [ManifestDocument]
    /// The digest of its one layer.
    public let layer: Digest

    /// `layer` is the `models` layout's archive: its digest, which is also its diff ID, and its size.
    public init(layer: Digest, size: Int64, manifestDigest: Digest, version: VersionName, createdAt: String) {
        let annotations = [
            OCIAnnotation.created: createdAt, OCIAnnotation.version: version.value,
            OCIAnnotation.manifestDigest: manifestDigest.description,
        ]
        var manifests: [ManifestDocument] = []
        var configs: [ManifestDocument] = []
        for platform in Self.platforms {
            let config = ManifestDocument(
                encoding: ImageConfig(
                    architecture: platform.architecture, os: platform.os, created: createdAt,
                    config: .init(labels: annotations, workingDir: "/models"),
                    rootfs: .init(type: "layers", diffIDs: [layer.description])),
                mediaType: OCIMediaType.imageConfig)
            configs.append(config)
            manifests.append(
                ManifestDocument(
                    encoding: OCIImageManifest(
                        config: OCIDescriptor(config),
                        layers: [OCIDescriptor(mediaType: OCIMediaType.layerTar, digest: layer, size: size)],
                        annotations: annotations),
                    mediaType: OCIMediaType.imageManifest))
        }
        self.manifests = manifests
        self.configs = configs
        self.layer = layer
        self.index = ManifestDocument(
            encoding: OCIImageIndex(
                manifests: zip(manifests, Self.platforms).map { OCIDescriptor($0, platform: $1) },
                annotations: annotations),
            mediaType: OCIMediaType.imageIndex)
    }

    /// The image config of the OCI image specification, the fields this image sets.
    struct ImageConfig: Encodable {
        struct Settings: Encodable {
            var labels: [String: String]
            var workingDir: String

            enum CodingKeys: String, CodingKey {
                case labels = "Labels"
                case workingDir = "WorkingDir"
            }
        }

        struct RootFS: Encodable {
            var type: String
            var diffIDs: [String]

            enum CodingKeys: String, CodingKey {
                case type
                case diffIDs = "diff_ids"
            }
        }

        var architecture: String
        var os: String
        var created: String
        var config: Settings
        var rootfs: RootFS
    }
}
