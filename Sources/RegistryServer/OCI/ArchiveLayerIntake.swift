import CacheImage
import FileSystemIO
import Foundation
import ModelRegistryCore
import NIOCore

/// The files of a tar layer pushed over the OCI API (a ModelPack `….v1.tar[+gzip|+zstd]` layer, a KitOps
/// ModelKit layer), each stored as a blob of its own, as `modelreg push` would have sent it: the layer streams
/// from the blob store through libarchive on a thread, each file straight into an upload, hashed on the way.
/// Nothing of a file is held in memory beyond a chunk, nothing written to a local disk but the blob store.
struct ArchiveLayerIntake {
    let registry: Registry

    /// The files the stored layer `digest` of `size` bytes holds, stored and recorded, in the layer's order.
    func files(of digest: Digest, size: Int64) async throws -> [ManifestFile] {
        let compressed = ByteChannel<ByteBuffer>()
        let events = ThreadHandoff<TarLayerReader.Event>()
        let reading = Task.detached {
            try await runOnThread {
                // However the reading ends, the feeding side must stop waiting for room in the channel.
                defer { compressed.close() }
                do {
                    try TarLayerReader().read({ try compressed.receive() }) { try events.send($0) }
                    events.finish()
                } catch is ThreadHandoff<TarLayerReader.Event>.ReceiverGone {
                    // The intake stopped first, with its own error.
                } catch {
                    events.finish(throwing: error)
                }
            }
        }
        let blobs = registry.blobs
        let feeding = Task {
            do {
                for try await chunk in try await blobs.read(digest, range: 0..<size) {
                    try await compressed.send(chunk)
                }
                compressed.finish()
            } catch is ByteChannelReaderGone {
                // The reader stopped early; its own error says why.
            } catch {
                compressed.finish(throwing: error)
            }
        }
        do {
            var files: [ManifestFile] = []
            while let event = try await events.receive() {
                guard case .file(let path, let size, let executable) = event else {
                    throw RegistryError(.internalError, "the layer reader sent bytes outside a file")
                }
                // A variant's limits, checked before a byte is stored: an archive can claim far more than it weighs.
                guard files.count < Manifest.maxFiles, size <= Manifest.maxFileSize else {
                    throw RegistryError(
                        .invalidManifest,
                        "the layer holds more than \(Manifest.maxFiles) files or '\(path)', larger than \(Manifest.maxFileSize) bytes"
                    )
                }
                files.append(try await store(path, executable: executable, from: events))
            }
            try await reading.value
            await feeding.value
            return files
        } catch {
            events.close()
            throw error
        }
    }

    /// One file's bytes, up to its end, into an upload committed under the digest they hash to.
    private func store(_ path: ManifestPath, executable: Bool, from events: ThreadHandoff<TarLayerReader.Event>)
        async throws -> ManifestFile
    {
        let upload = try await registry.blobs.startUpload(expecting: nil)
        let bytes = FileBytes(events: events)
        do {
            let size = try await registry.blobs.append(upload.id, at: 0, bytes)
            guard let digest = bytes.digest else {
                throw RegistryError(.internalError, "the layer reader ended '\(path)' without its end")
            }
            let info = try await BlobIntake(registry: registry).commit(upload.id, expecting: digest)
            return ManifestFile(path: path, digest: info.digest, size: size, executable: executable)
        } catch {
            try? await registry.blobs.cancelUpload(upload.id)
            throw error
        }
    }
}

/// One file's bytes as the reader sends them, hashed as they go by; ends at the file's end.
private final class FileBytes: AsyncSequence, AsyncIteratorProtocol, @unchecked Sendable {
    private let events: ThreadHandoff<TarLayerReader.Event>
    private var hasher = ContentHasher()
    /// What the bytes hash to, once the file's end has been read.
    private(set) var digest: Digest?

    init(events: ThreadHandoff<TarLayerReader.Event>) {
        self.events = events
    }

    func makeAsyncIterator() -> FileBytes { self }

    func next() async throws -> ByteBuffer? {
        guard digest == nil else { return nil }
        switch try await events.receive() {
        case .data(let bytes):
            hasher.update(bytes)
            return ByteBuffer(bytes: bytes)
        case .endOfFile:
            digest = hasher.finalize()
            return nil
        case .file, nil:
            throw RegistryError(.invalidManifest, "the layer ended inside a file")
        }
    }
}
