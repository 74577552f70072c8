import Foundation
import ModelRegistryCore

/// The media types of the OCI image specification and of CNCF ModelPack that the registry serves and accepts.
public enum OCIMediaType {
    public static let imageManifest = "application/vnd.oci.image.manifest.v1+json"
    public static let imageIndex = "application/vnd.oci.image.index.v1+json"
    public static let imageConfig = "application/vnd.oci.image.config.v1+json"
    public static let layerTar = "application/vnd.oci.image.layer.v1.tar"
    public static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
    public static let dockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"

    /// ModelPack's `artifactType` of a model's manifest, and its config's media type.
    public static let modelManifest = "application/vnd.cncf.model.manifest.v1+json"
    public static let modelConfig = "application/vnd.cncf.model.config.v1+json"

    /// KitOps ModelKit's `artifactType`, and its config's media type (the Kitfile as JSON).
    public static let modelKitManifest = "application/vnd.kitops.modelkit.manifest.v1+json"
    public static let modelKitConfig = "application/vnd.kitops.modelkit.config.v1+json"

    /// Whether a layer of this type is a tar archive of files: ModelPack's `application/vnd.cncf.model.KIND.v1.tar`
    /// (KIND one of `ModelPackLayerKind`) or KitOps' `application/vnd.kitops.modelkit.TYPE.v1.tar` (model,
    /// modelpart, code, dataset, docs, prompts), plain, `+gzip` or `+zstd`.
    public static func isArchiveLayer(_ mediaType: String) -> Bool {
        var type = Substring(mediaType)
        for compression in ["+gzip", "+zstd"] where type.hasSuffix(compression) {
            type = type.dropLast(compression.count)
        }
        guard type.hasSuffix(".v1.tar") else { return false }
        type = type.dropLast(".v1.tar".count)
        if type.hasPrefix("application/vnd.cncf.model.") {
            let kind = type.dropFirst("application/vnd.cncf.model.".count)
            return ModelPackLayerKind.allCases.contains { $0.rawValue == kind }
        }
        if type.hasPrefix("application/vnd.kitops.modelkit.") {
            let kind = type.dropFirst("application/vnd.kitops.modelkit.".count)
            return !kind.isEmpty && kind.allSatisfy { $0.isASCII && $0.isLetter }
        }
        return false
    }

    /// Whether `text` is a media type as the image spec's schema has it: `type/subtype`, each an RFC 6838
    /// restricted name, `[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}`.
    public static func isValid(_ text: some StringProtocol) -> Bool {
        let parts = text.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        func alphanumeric(_ c: UInt8) -> Bool { (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) }
        return parts.count == 2
            && parts.allSatisfy { name in
                guard let first = name.first, alphanumeric(first), name.count <= 127 else { return false }
                return name.allSatisfy { alphanumeric($0) || "!#$&^_.+-".utf8.contains($0) }
            }
    }
}

/// What ModelPack calls the kinds of a model's files; each is a raw (unarchived, uncompressed) layer type.
public enum ModelPackLayerKind: String, Sendable, CaseIterable {
    case weight
    case weightConfig = "weight.config"
    case doc
    case code
    case dataset

    public var rawMediaType: String { "application/vnd.cncf.model.\(rawValue).v1.raw" }

    /// The kind of a raw layer's media type; nil for any other.
    public init?(rawMediaType: String) {
        guard let kind = Self.allCases.first(where: { $0.rawMediaType == rawMediaType }) else { return nil }
        self = kind
    }

    /// Weights as inspection or the file's name tells; code and documentation by name; every other file
    /// (config.json, tokenizers, vocabularies) configures the weights.
    public init(of file: ManifestFile, in manifest: Manifest) {
        let name = (file.path.components.last.map(String.init) ?? file.path.value).lowercased()
        if manifest.isWeightFile(file) {
            self = .weight
        } else if name.hasSuffix(".py") || name.hasSuffix(".sh") {
            self = .code
        } else if name.hasSuffix(".md") || name.hasPrefix("license") || name.hasPrefix("notice")
            || name.hasPrefix("readme") || name.hasPrefix("use_policy")
        {
            self = .doc
        } else {
            self = .weightConfig
        }
    }
}

/// The annotation keys the registry writes on layers and reads from pushed ones.
public enum OCIAnnotation {
    /// ModelPack's path of a file inside the model.
    public static let filepath = "org.cncf.model.filepath"
    /// The file's name as `oras pull` places it.
    public static let title = "org.opencontainers.image.title"
    public static let created = "org.opencontainers.image.created"
    public static let version = "org.opencontainers.image.version"
    /// The registry's own manifest digest of the variant an OCI document shows.
    public static let manifestDigest = "dev.modelreg.manifest.digest"
}

/// A reference from one OCI document to another or to a blob.
public struct OCIDescriptor: Codable, Hashable, Sendable {
    public var mediaType: String
    public var digest: String
    public var size: Int64
    public var artifactType: String?
    public var annotations: [String: String]?
    public var platform: OCIPlatform?

    public init(
        mediaType: String, digest: Digest, size: Int64, artifactType: String? = nil,
        annotations: [String: String]? = nil, platform: OCIPlatform? = nil
    ) {
        self.mediaType = mediaType
        self.digest = digest.description
        self.size = size
        self.artifactType = artifactType
        self.annotations = annotations
        self.platform = platform
    }

    /// The descriptor of a document.
    public init(_ document: ManifestDocument, artifactType: String? = nil, platform: OCIPlatform? = nil) {
        self.init(
            mediaType: document.mediaType, digest: document.digest, size: Int64(document.bytes.count),
            artifactType: artifactType, platform: platform)
    }
}

public struct OCIPlatform: Codable, Hashable, Sendable {
    public var architecture: String
    public var os: String

    public init(architecture: String, os: String = "linux") {
        self.architecture = architecture
        self.os = os
    }
}

/// An image manifest (schema version 2), an artifact's included.
public struct OCIImageManifest: Codable, Hashable, Sendable {
    public var schemaVersion: Int
    public var mediaType: String?
    public var artifactType: String?
    public var config: OCIDescriptor
    public var layers: [OCIDescriptor]
    public var subject: OCIDescriptor?
    public var annotations: [String: String]?

    public init(
        artifactType: String? = nil, config: OCIDescriptor, layers: [OCIDescriptor], subject: OCIDescriptor? = nil,
        annotations: [String: String]? = nil
    ) {
        self.schemaVersion = 2
        self.mediaType = OCIMediaType.imageManifest
        self.artifactType = artifactType
        self.config = config
        self.layers = layers
        self.subject = subject
        self.annotations = annotations
    }
}

/// An image index: the manifests of one image for several platforms, or the referrers of a manifest.
public struct OCIImageIndex: Codable, Hashable, Sendable {
    public var schemaVersion: Int
    public var mediaType: String
    public var manifests: [OCIDescriptor]
    public var annotations: [String: String]?

    public init(manifests: [OCIDescriptor], annotations: [String: String]? = nil) {
        self.schemaVersion = 2
        self.mediaType = OCIMediaType.imageIndex
        self.manifests = manifests
        self.annotations = annotations
    }
}

extension ManifestDocument {
    /// A JSON document the registry writes: sorted keys, no whitespace, slashes unescaped, so the same value
    /// always gives the same bytes and the same digest.
    public init(encoding value: some Encodable, mediaType: String) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding plain value types cannot fail.
        self.init(bytes: Array(try! encoder.encode(value)), mediaType: mediaType)
    }
}
