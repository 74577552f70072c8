import Foundation
import ModelRegistryCore
import NIOCore
import Testing

@Suite struct FileSystemBlobStoreTests {
    func makeStore(_ root: URL) throws -> FileSystemBlobStore {
        let directory = DataDirectory(root.path)
        try directory.create()
        return FileSystemBlobStore(directory: directory)
    }

    let bytes: [UInt8] = Array((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })

    @Test func commitsAVerifiedBlob() async throws {
        try await withTemporaryDirectory { root in
            let store = try makeStore(root)
            let digest = Digest.of(bytes)
            let id = try store.createUpload()
            let offset = try await store.append(id, at: 0, Chunks(parts: [Array(bytes[..<1000]), Array(bytes[1000...])]))
            #expect(offset == Int64(bytes.count))
            let info = try store.commitUpload(id, expecting: digest)
            #expect(info == BlobInfo(digest: digest, size: Int64(bytes.count)))
            #expect(try store.info(digest)?.size == Int64(bytes.count))
            let stored = try Data(contentsOf: store.directory.blob(digest))
            #expect(Array(stored) == bytes)
            #expect(store.directory.blob(digest).path.hasSuffix("blobs/sha256/\(digest.hex.prefix(2))/\(digest.hex)"))
            #expect(files(in: store.directory.uploads).isEmpty)
            let reader = try store.reader(digest)
            #expect(Array(buffer: try reader.read(at: 10, maxLength: 5)) == Array(bytes[10..<15]))
            #expect(try reader.read(at: Int64(bytes.count), maxLength: 5).readableBytes == 0)
        }
    }

    @Test func wrongDigestStoresNothing() async throws {
        try await withTemporaryDirectory { root in
            let store = try makeStore(root)
            let wrong = Digest.of(Array("something else".utf8))
            let id = try store.createUpload()
            _ = try await store.append(id, at: 0, Chunks(parts: [bytes]))
            let error = #expect(throws: RegistryError.self) { try store.commitUpload(id, expecting: wrong) }
            #expect(error?.code == .digestMismatch)
            #expect(try store.info(wrong) == nil)
            #expect(try store.info(Digest.of(bytes)) == nil)
            #expect(files(in: store.directory.blobs).isEmpty)
            #expect(files(in: store.directory.uploads).isEmpty)
            #expect(throws: RegistryError.self) { try store.uploadOffset(id) }
        }
    }

    @Test func resumesAfterADroppedStreamAndARestart() async throws {
        try await withTemporaryDirectory { root in
            let first = try makeStore(root)
            let id = try first.createUpload()
            await #expect(throws: Chunks.Dropped.self) {
                _ = try await first.append(id, at: 0, Chunks(parts: [Array(bytes[..<5000])], failAtEnd: true))
            }
            #expect(try first.uploadOffset(id) == 5000)
            // A new store instance has no hash state in memory: it must rebuild it from the bytes on disk.
            let second = try makeStore(root)
            #expect(try second.uploadOffset(id) == 5000)
            let error = await #expect(throws: RegistryError.self) {
                _ = try await second.append(id, at: 0, Chunks(parts: [bytes]))
            }
            #expect(error?.code == .uploadOffsetMismatch)
            _ = try await second.append(id, at: 5000, Chunks(parts: [Array(bytes[5000...])]))
            let info = try second.commitUpload(id, expecting: Digest.of(bytes))
            #expect(info.size == Int64(bytes.count))
            #expect(Array(try Data(contentsOf: second.directory.blob(info.digest))) == bytes)
        }
    }

    @Test func existingBlobIsNotWrittenTwice() async throws {
        try await withTemporaryDirectory { root in
            let store = try makeStore(root)
            let digest = Digest.of(bytes)
            for _ in 0..<2 {
                let id = try store.createUpload()
                _ = try await store.append(id, at: 0, Chunks(parts: [bytes]))
                _ = try store.commitUpload(id, expecting: digest)
            }
            let attributes = try FileManager.default.attributesOfItem(atPath: store.directory.blob(digest).path)
            #expect(attributes[.size] as? Int == bytes.count)
            #expect(files(in: store.directory.uploads).isEmpty)
        }
    }

    @Test func cancelRemovesTheUpload() async throws {
        try await withTemporaryDirectory { root in
            let store = try makeStore(root)
            let id = try store.createUpload()
            _ = try await store.append(id, at: 0, Chunks(parts: [bytes]))
            try store.cancelUpload(id)
            #expect(files(in: store.directory.uploads).isEmpty)
            let error = #expect(throws: RegistryError.self) { try store.cancelUpload(id) }
            #expect(error?.code == .notFound)
        }
    }

    @Test func uploadIDsCannotEscapeTheUploadsDirectory() {
        for text in ["../registry.sqlite", "x", "", "00000000-0000-0000-0000-000000000000/../a"] {
            #expect(throws: RegistryError.self) { try UploadID(text) }
        }
    }
}
