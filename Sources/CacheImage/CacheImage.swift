import ModelRegistryCore

/// How a variant's files are laid out inside its cache image.
public enum CacheImageLayout: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// The files as pushed, at the top of the archive.
    case flat
    /// The Hugging Face hub cache: `models--ORG--NAME/{blobs,snapshots/<revision>,refs/main}`, so loaders with
    /// `HF_HUB_OFFLINE=1` and `cache_dir` (or `HF_HUB_CACHE`) pointing at the destination find the model.
    case hf
    /// The files under `models/`: the layer of the variant's runnable OCI image (KServe's modelcars look for
    /// `/models`; an image volume shows it at `<mountPath>/models`).
    case models

    public var description: String { rawValue }
}

/// The cache image of one variant in one layout: a deterministic, uncompressed tar archive described as
/// header bytes interleaved with references to stored blobs. Nothing but this description is kept: the
/// archive is streamed from the blobs, so an image costs no disk beyond the blobs themselves, and the same
/// manifest, name and layout always give the same bytes.
public struct CacheImage: Sendable {
    public struct Entry: Sendable, Equatable {
        public enum Kind: Sendable, Equatable {
            case directory
            case file(Digest, size: Int64, executable: Bool)
            case symlink(target: String)
        }

        /// Relative, `/`-separated, without a trailing slash.
        public var path: String
        public var kind: Kind
        /// Where the entry's header blocks start; an archive reader may start reading there.
        public var offset: Int64
        /// Where its data starts.
        public var dataOffset: Int64
    }

    /// A run of the archive: literal bytes (headers, padding, small generated files) or a whole blob.
    public enum Segment: Sendable, Equatable {
        case bytes([UInt8])
        case blob(Digest, size: Int64)

        public var size: Int64 {
            switch self {
            case .bytes(let bytes): Int64(bytes.count)
            case .blob(_, let size): size
            }
        }
    }

    /// A piece of a byte range of the archive.
    public enum Part: Sendable, Equatable {
        case bytes(ArraySlice<UInt8>)
        case blob(Digest, range: Range<Int64>)
    }

    public let layout: CacheImageLayout
    public let entries: [Entry]
    /// Each segment with the offset it starts at, in archive order.
    public let segments: [(offset: Int64, segment: Segment)]
    public let size: Int64

    public init(model: ModelName, manifestDigest: Digest, manifest: Manifest, layout: CacheImageLayout) {
        let planned =
            switch layout {
            case .flat: Self.flatEntries(manifest, under: nil)
            case .models: Self.flatEntries(manifest, under: "models")
            case .hf: HuggingFaceCache.entries(model: model, manifestDigest: manifestDigest, manifest: manifest)
            }
        var entries: [Entry] = []
        var segments: [(offset: Int64, segment: Segment)] = []
        var offset: Int64 = 0
        func append(_ segment: Segment) {
            guard segment.size > 0 else { return }
            segments.append((offset, segment))
            offset += segment.size
        }
        for item in planned.sorted(by: { Self.precedes($0.path, $1.path) }) {
            let start = offset
            switch item.kind {
            case .directory:
                append(.bytes(TarHeader.blocks(path: item.path + "/", kind: .directory, mode: 0o755)))
            case .symlink(let target):
                append(.bytes(TarHeader.blocks(path: item.path, kind: .symlink, mode: 0o777, linkTarget: target)))
            case .file(_, let size, let executable):
                append(
                    .bytes(TarHeader.blocks(path: item.path, kind: .file, mode: executable ? 0o755 : 0o644, size: size))
                )
            }
            entries.append(Entry(path: item.path, kind: item.kind, offset: start, dataOffset: offset))
            if case .file(let digest, let size, _) = item.kind {
                append(item.inline.map(Segment.bytes) ?? .blob(digest, size: size))
                append(.bytes(TarHeader.padding(size)))
            }
        }
        append(.bytes(TarHeader.endOfArchive))
        self.layout = layout
        self.entries = entries
        self.segments = segments
        self.size = offset
    }

    /// The parts that make up bytes `range` of the archive, in order.
    public func parts(in range: Range<Int64>) -> [Part] {
        var parts: [Part] = []
        // Segments are sorted by offset: find the first that ends after the range starts.
        var low = 0
        var high = segments.count
        while low < high {
            let middle = (low + high) / 2
            if segments[middle].offset + segments[middle].segment.size <= range.lowerBound {
                low = middle + 1
            } else {
                high = middle
            }
        }
        for (offset, segment) in segments[low...] {
            guard offset < range.upperBound else { break }
            let start = max(range.lowerBound, offset) - offset
            let end = min(range.upperBound, offset + segment.size) - offset
            switch segment {
            case .bytes(let bytes): parts.append(.bytes(bytes[Int(start)..<Int(end)]))
            case .blob(let digest, _): parts.append(.blob(digest, range: start..<end))
            }
        }
        return parts
    }

    /// Files (and generated files) of the image, with their digests: what an extractor checks.
    public var files: [Entry] { entries.filter { if case .file = $0.kind { true } else { false } } }

    /// Component by component, so that a directory comes right before its contents.
    static func precedes(_ left: String, _ right: String) -> Bool {
        // Scalars, not Characters: a combining mark after '/' must not glue two components together.
        let a = left.unicodeScalars.split(separator: "/").map(Substring.init)
        let b = right.unicodeScalars.split(separator: "/").map(Substring.init)
        for (x, y) in zip(a, b) where !x.utf8.elementsEqual(y.utf8) { return x.utf8.lexicographicallyPrecedes(y.utf8) }
        return a.count < b.count
    }

    /// The files as pushed, inside `folder` when one is given.
    private static func flatEntries(_ manifest: Manifest, under folder: String?) -> [PlannedEntry] {
        let prefix = folder.map { [$0] } ?? []
        var directories = Set(folder.map { [$0] } ?? [])
        for file in manifest.files {
            let components = prefix + file.path.components.map(String.init)
            for depth in 1..<max(components.count, 1) {
                directories.insert(components.prefix(depth).joined(separator: "/"))
            }
        }
        return directories.map { PlannedEntry(path: $0, kind: .directory) }
            + manifest.files.map {
                PlannedEntry(
                    path: (prefix + [$0.path.value]).joined(separator: "/"),
                    kind: .file($0.digest, size: $0.size, executable: $0.executable))
            }
    }
}

/// An entry before offsets are known; `inline` holds the data of a generated file.
struct PlannedEntry {
    var path: String
    var kind: CacheImage.Entry.Kind
    var inline: [UInt8]?
}
