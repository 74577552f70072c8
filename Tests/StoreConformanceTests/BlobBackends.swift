import FileSystemBlobs
import Foundation
import InMemoryStorage
import ModelRegistryCore
import NIOCore
import Testing

/// A blob backend under test: `open` makes an empty storage and hands the test a way to open store instances
/// over it (a second instance is another replica, or the server after a restart).
struct BlobBackend: Sendable, CustomTestStringConvertible {
    let name: String
    /// Whether its stores hand out direct download URLs.
    let presigns: Bool
    let open:
        @Sendable (_ body: @Sendable (_ instance: @Sendable () throws -> any BlobStore) async throws -> Void)
            async throws -> Void

    var testDescription: String { name }

    static let all: [BlobBackend] = [
        BlobBackend(name: "in-memory", presigns: false) { body in
            let storage = InMemoryBlobStore.Storage()
            try await body { InMemoryBlobStore(storage: storage) }
        },
        BlobBackend(name: "file system", presigns: false) { body in
            let root = FileManager.default.temporaryDirectory.appendingPathComponent(
                "modelreg-conf-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: root) }
            let directory = DataDirectory(root.path)
            try directory.create()
            try await body { FileSystemBlobStore(directory: directory) }
        },
    ]
}

/// Byte buffers as an async sequence, optionally failing after the last one (a dropped connection).
struct Chunks: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    var parts: [[UInt8]]
    var failAtEnd = false

    struct Dropped: Error {}

    struct AsyncIterator: AsyncIteratorProtocol {
        var parts: [[UInt8]]
        var failAtEnd: Bool
        mutating func next() async throws -> ByteBuffer? {
            if parts.isEmpty {
                if failAtEnd { throw Dropped() }
                return nil
            }
            return ByteBuffer(bytes: parts.removeFirst())
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(parts: parts, failAtEnd: failAtEnd) }
}

extension BlobStore {
    func put(_ bytes: [UInt8]) async throws -> BlobInfo {
        try await put(Chunks(parts: [bytes]), expecting: Digest.of(bytes))
    }

    func readAll(_ digest: Digest, _ range: Range<Int64>) async throws -> [UInt8] {
        var collected: [UInt8] = []
        for try await chunk in try await read(digest, range: range) { collected += Array(buffer: chunk) }
        return collected
    }
}
