import CArchive
import Foundation
import ModelRegistryCore

/// Reads the files of an OCI tar layer (a ModelPack `….v1.tar` layer, a KitOps ModelKit layer), plain, gzip or
/// zstd compressed, with libarchive: directories are passed over, each regular file handed on in order as its
/// path, then its bytes, then its end. An entry a model's file cannot be (a link, a device, an absolute path,
/// `..`) stops the reading with an `invalidPath` error naming it.
public struct TarLayerReader {
    public enum Event: Sendable, Equatable {
        case file(ManifestPath, size: Int64, executable: Bool)
        /// Some of the current file's bytes, at most `chunkSize`.
        case data([UInt8])
        case endOfFile
    }

    /// The most bytes a `data` event carries: libarchive's blocks gathered, so that whoever takes them (an
    /// upload's append) runs once a mebibyte rather than once a block.
    public static let chunkSize = 1 << 20

    public init() {}

    /// Reads the layer to its end. `source` blocks for the next chunk of the (compressed) layer and returns nil
    /// at its end; an error it throws is rethrown as is, as is one `handle` throws.
    public func read(_ source: @escaping () throws -> (any ArchiveBytes)?, _ handle: (Event) throws -> Void) throws {
        try readTarArchive(source, decompressing: true, acceptingWarnings: true, failure: Self.archiveError) {
            archive, entry in try readEntry(archive, entry, handle)
        }
    }

    private func readEntry(_ archive: OpaquePointer, _ entry: OpaquePointer, _ handle: (Event) throws -> Void) throws {
        guard let raw = archive_entry_pathname_utf8(entry) ?? archive_entry_pathname(entry) else {
            throw RegistryError(.invalidPath, "the layer holds an entry without a path")
        }
        var name = String(cString: raw)
        // Tools write `./model.safetensors` and `model/` as often as `model.safetensors` and `model`.
        while name.hasPrefix("./") { name.removeFirst(2) }
        while name.hasSuffix("/") { name.removeLast() }
        let shown = String(name.prefix(300))
        let type = archive_entry_filetype(entry) & S_IFMT
        if type == S_IFDIR || name.isEmpty || name == "." { return }
        guard type == S_IFREG, archive_entry_hardlink(entry) == nil else {
            throw RegistryError(
                .invalidPath,
                "the layer holds '\(shown)', a link or device: a model's layer holds files and directories only")
        }
        let path: ManifestPath
        do {
            path = try ManifestPath(name)
        } catch {
            throw RegistryError(.invalidPath, "the layer holds '\(shown)': \(error.message)")
        }
        let executable = archive_entry_perm(entry) & 0o111 != 0
        try handle(.file(path, size: archive_entry_size(entry), executable: executable))
        var chunk: [UInt8] = []
        chunk.reserveCapacity(Self.chunkSize)
        try readEntryData(
            archive, failure: Self.archiveError(archive, "reading '\(shown)'"),
            sparse: RegistryError(.invalidPath, "the layer holds '\(shown)' as a sparse file: store it whole")
        ) { block in
            var bytes = block
            while !bytes.isEmpty {
                let taken = min(bytes.count, Self.chunkSize - chunk.count)
                chunk.append(contentsOf: bytes.prefix(taken))
                bytes = UnsafeRawBufferPointer(rebasing: bytes.dropFirst(taken))
                if chunk.count == Self.chunkSize {
                    try handle(.data(chunk))
                    chunk.removeAll(keepingCapacity: true)
                }
            }
        }
        if !chunk.isEmpty { try handle(.data(chunk)) }
        try handle(.endOfFile)
    }

    private static func archiveError(_ archive: OpaquePointer, _ what: String) -> RegistryError {
        let message = archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
        return RegistryError(.invalidManifest, "the layer is not a tar archive (\(what)): \(message)")
    }
}
