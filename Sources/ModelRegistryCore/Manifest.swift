import Foundation

/// A relative file path inside a variant: `/`-separated, no empty, `.` or `..` components, no NUL or
/// control characters, no backslash, bounded length. Anything that becomes a path on disk goes through here.
public struct ManifestPath: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    /// The top-level names `pull` and `fetch` keep for their own files (staging directories, the marker, a
    /// journal) in a destination: no variant may hold a path whose first component starts with it.
    public static let reservedPrefix = ".modelreg-"
    public static let maxLength = 1024
    public static let maxComponentLength = 255

    public let value: String

    public init(_ text: String) throws(RegistryError) {
        func invalid(_ why: String) -> RegistryError {
            let shown = text.unicodeScalars.map { $0.value < 0x20 ? "\\u{\(String($0.value, radix: 16))}" : String($0) }
                .joined()
            return RegistryError(.invalidPath, "invalid file path '\(shown.prefix(200))': \(why)")
        }
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty else { throw invalid("it is empty") }
        guard bytes.count <= Self.maxLength else { throw invalid("longer than \(Self.maxLength) bytes") }
        guard bytes.first != UInt8(ascii: "/") else { throw invalid("absolute paths are not allowed") }
        guard !bytes.contains(0) else { throw invalid("it contains a NUL byte") }
        guard !bytes.contains(where: { $0 < 0x20 || $0 == 0x7f }) else {
            throw invalid("it contains a control character")
        }
        guard !bytes.contains(UInt8(ascii: "\\")) else { throw invalid("backslashes are not allowed") }
        // Split the bytes, as the file system does, not the Characters: a combining mark after a '/' makes
        // one Character of both, so "../\u{301}x" is a single Character component that is not "..".
        for component in bytes.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            guard !component.isEmpty else { throw invalid("empty path component") }
            guard !component.elementsEqual([0x2e]), !component.elementsEqual([0x2e, 0x2e]) else {
                throw invalid("'.' and '..' are not allowed")
            }
            guard component.count <= Self.maxComponentLength else {
                throw invalid("a component is longer than \(Self.maxComponentLength) bytes")
            }
        }
        self.value = text
    }

    /// Split at every '/' scalar, whatever combining marks follow it (see `init`).
    public var components: [Substring] { value.unicodeScalars.split(separator: "/").map(Substring.init) }
    public var description: String { value }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.value.utf8.lexicographicallyPrecedes(rhs.value.utf8) }

    public init(from decoder: any Decoder) throws {
        self = try Self(decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }
}

/// The container format of a variant's weights.
public enum ModelFormat: String, Sendable, Codable, CaseIterable {
    case safetensors
    case gguf
    case pytorchBin = "pytorch-bin"
    case other

    /// The format implied by the weight files present; configs and tokenizers do not count.
    public static func detect(paths: some Sequence<ManifestPath>) -> ModelFormat {
        let extensions = Set(paths.compactMap { $0.value.split(separator: ".").last.map { $0.lowercased() } })
        if extensions.contains("safetensors") { return .safetensors }
        if extensions.contains("gguf") { return .gguf }
        if extensions.contains("bin") || extensions.contains("pt") || extensions.contains("pth") { return .pytorchBin }
        return .other
    }
}

public struct ManifestFile: Hashable, Sendable, Codable {
    public var path: ManifestPath
    public var digest: Digest
    public var size: Int64
    public var executable: Bool

    public init(path: ManifestPath, digest: Digest, size: Int64, executable: Bool = false) {
        self.path = path
        self.digest = digest
        self.size = size
        self.executable = executable
    }
}

public struct Quantization: Hashable, Sendable, Codable {
    public var method: String
    public var bits: Int?
    public var groupSize: Int?
    public var derivedFrom: VariantName?

    public init(method: String, bits: Int? = nil, groupSize: Int? = nil, derivedFrom: VariantName? = nil) {
        self.method = method
        self.bits = bits
        self.groupSize = groupSize
        self.derivedFrom = derivedFrom
    }
}

/// The description of one variant. Its canonical JSON encoding is what gets hashed, so the variant's
/// digest depends only on content: the same files, format and quantization always give the same digest.
public struct Manifest: Hashable, Sendable, Codable {
    public static let currentSchemaVersion = 1
    public static let mediaType = "application/vnd.modelreg.manifest.v1+json"
    public static let maxFiles = 100_000
    /// 16 TiB, far above any weight file; with `maxFiles` it keeps every sum of sizes and archive offset
    /// (`totalSize`, cache image layouts) below `Int64.max`.
    public static let maxFileSize: Int64 = 1 << 44

    public var schemaVersion: Int
    public var format: ModelFormat
    public var files: [ManifestFile]
    public var quantization: Quantization?
    /// What inspecting the weight files found; absent for opaque files (`push --no-inspect`).
    public var metadata: ModelMetadata?

    public init(
        format: ModelFormat, files: [ManifestFile], quantization: Quantization? = nil, metadata: ModelMetadata? = nil
    ) {
        self.schemaVersion = Self.currentSchemaVersion
        self.format = format
        self.files = files.sorted { $0.path < $1.path }
        self.quantization = quantization
        self.metadata = metadata
    }

    public var totalSize: Int64 { files.reduce(0) { $0 + $1.size } }

    /// Sorted keys, no whitespace, files in byte order of their paths.
    public func canonicalJSON() -> [UInt8] {
        var sorted = self
        sorted.files.sort { $0.path < $1.path }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding plain value types cannot fail.
        return Array(try! encoder.encode(sorted))
    }

    public var digest: Digest { Digest.of(canonicalJSON()) }

    /// Decodes and checks a manifest received from outside.
    public static func decode(_ bytes: [UInt8]) throws(RegistryError) -> Manifest {
        let manifest: Manifest
        do {
            manifest = try JSONDecoder().decode(Manifest.self, from: Data(bytes))
        } catch let error as RegistryError {
            throw RegistryError(
                error.code == .invalidPath ? .invalidPath : .invalidManifest, "invalid manifest: \(error.message)")
        } catch let DecodingError.dataCorrupted(context) {
            throw RegistryError(.invalidManifest, "invalid manifest: \(Self.describe(context))")
        } catch let DecodingError.keyNotFound(key, context) {
            throw RegistryError(
                .invalidManifest, "invalid manifest: missing field '\(key.stringValue)' at \(Self.path(context))")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            throw RegistryError(.invalidManifest, "invalid manifest: wrong type at \(Self.path(context))")
        } catch {
            throw RegistryError(.invalidManifest, "invalid manifest: \(error)")
        }
        try manifest.validate()
        return manifest
    }

    private static func path(_ context: DecodingError.Context) -> String {
        let path = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        return path.isEmpty ? "top level" : path
    }

    private static func describe(_ context: DecodingError.Context) -> String {
        if let underlying = context.underlyingError as? RegistryError { return underlying.message }
        return "\(context.debugDescription) at \(path(context))"
    }

    public func validate() throws(RegistryError) {
        guard schemaVersion == Self.currentSchemaVersion else {
            throw RegistryError(
                .invalidManifest,
                "invalid manifest: schemaVersion \(schemaVersion) is not supported (expected \(Self.currentSchemaVersion))"
            )
        }
        guard !files.isEmpty else { throw RegistryError(.invalidManifest, "invalid manifest: it lists no files") }
        guard files.count <= Self.maxFiles else {
            throw RegistryError(.invalidManifest, "invalid manifest: more than \(Self.maxFiles) files")
        }
        var seen = Set<String>()
        for file in files {
            guard file.size >= 0 else {
                throw RegistryError(.invalidManifest, "invalid manifest: '\(file.path)' has a negative size")
            }
            guard file.size <= Self.maxFileSize else {
                throw RegistryError(
                    .invalidManifest,
                    "invalid manifest: '\(file.path)' claims \(file.size) bytes, over the \(Self.maxFileSize)-byte limit for a file"
                )
            }
            if let first = file.path.components.first, first.hasPrefix(ManifestPath.reservedPrefix) {
                throw RegistryError(
                    .invalidPath,
                    "invalid manifest: '\(file.path)' starts with '\(ManifestPath.reservedPrefix)', which pull and fetch keep for their own files in a destination: rename it, or leave it out (a fetched directory's marker is not part of the model)"
                )
            }
            guard seen.insert(file.path.value).inserted else {
                throw RegistryError(.invalidManifest, "invalid manifest: '\(file.path)' is listed twice")
            }
        }
        // A file cannot also be a directory of another file ("a" and "a/b").
        for file in files {
            var prefix = ""
            for component in file.path.components.dropLast() {
                prefix += prefix.isEmpty ? String(component) : "/\(component)"
                if seen.contains(prefix) {
                    throw RegistryError(
                        .invalidManifest, "invalid manifest: '\(prefix)' is both a file and a directory")
                }
            }
        }
    }
}

extension Manifest {
    /// Every claimed blob must be known with the size claimed for it: the blob store's or the metadata store's
    /// knowledge, whichever `size` reads (the size of a digest, nil when it is unknown). Throws `.blobsMissing`
    /// naming, by its label, each blob that is not.
    public static func requireBlobs(
        _ claims: [(label: String, digest: Digest, size: Int64)], size: (Digest) throws -> Int64?
    ) throws {
        var problems: [String] = []
        for claim in claims {
            switch try size(claim.digest) {
            case nil: problems.append("\(claim.label) is not uploaded")
            case let known? where known != claim.size:
                problems.append("\(claim.label) is \(known) bytes, not \(claim.size)")
            default: break
            }
        }
        guard problems.isEmpty else { throw RegistryError.blobsMissing(problems) }
    }

    /// Every file's blob must be known with the size the file claims: the blob store's or the metadata
    /// store's knowledge, whichever `size` reads (the size of a digest, nil when it is unknown). Throws
    /// `.blobsMissing` naming each file whose blob is not. The archive layers of the artifact the files were
    /// pushed as (`PushedArtifact.archiveLayers`) are required alike.
    public func requireBlobs(archiveLayers: [BlobEntry] = [], size: (Digest) throws -> Int64?) throws {
        var checked = Set<Digest>()
        try Self.requireBlobs(
            files.filter { checked.insert($0.digest).inserted }.map {
                ("\($0.path) (\($0.digest))", $0.digest, $0.size)
            }
                + archiveLayers.filter { checked.insert($0.digest).inserted }.map {
                    ("the archive layer \($0.digest)", $0.digest, $0.size)
                },
            size: size)
    }
}

extension Manifest {
    /// Files inspection found weights in and, for variants pushed without inspection, files of a weight
    /// format's extension or of 10 MiB and more: what the Hub keeps in LFS and ModelPack calls weights.
    public func isWeightFile(_ file: ManifestFile) -> Bool {
        if let metadata, metadata.weightFiles[file.path.value] != nil { return true }
        let name = file.path.value.lowercased()
        return Self.weightExtensions.contains { name.hasSuffix($0) } || file.size >= 10 << 20
    }

    private static let weightExtensions = [
        ".safetensors", ".gguf", ".bin", ".pt", ".pth", ".ckpt", ".onnx", ".h5", ".msgpack", ".npz",
    ]
}
