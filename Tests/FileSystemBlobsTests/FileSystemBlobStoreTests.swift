import FileSystemBlobs
import FileSystemIO
import Foundation
import ModelRegistryCore
import NIOCore
import NIOPosix
import Testing

/// What the file system store does beyond the `BlobStore` conformance suite (StoreConformanceTests): its
/// layout, its disk threads, and what a crash leaves in `uploads/`.
@Suite struct FileSystemBlobStoreTests {
    func makeStore(_ root: URL) throws -> FileSystemBlobStore {
        let directory = DataDirectory(root.path)
        try directory.create()
        return FileSystemBlobStore(directory: directory)
    }

    let bytes: [UInt8] = Array((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })

    /// Reads reuse chunk memory only once nobody holds it: a reader that keeps every chunk it was given (a
    /// slow socket; its stream's window fills, so each further read waits its longest) and one that drops
    /// each at once both see exactly the file's bytes.
    @Test(arguments: [true, false]) func reusedReadBuffersNeverChangeAChunkHandedOut(keepingChunks: Bool) async throws {
        try await withTemporaryDirectory { root in
            let store = try makeStore(root)
            let content = (0..<(6 * BlobBytes.chunkLimit + 12345)).map {
                UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 20)
            }
            let digest = try await store.put(buffers(ByteBuffer(bytes: content)), expecting: Digest.of(content)).digest
            var kept: [ByteBuffer] = []
            var streamed: [UInt8] = []
            for try await chunk in try await store.read(digest, range: 0..<Int64(content.count)) {
                streamed += chunk.readableBytesView
                if keepingChunks { kept.append(chunk) }
            }
            #expect(streamed == content)
            if keepingChunks { #expect(kept.flatMap { Array($0.readableBytesView) } == content) }
        }
    }

    /// A blob is one file at its content-addressed path; a committed upload leaves nothing in `uploads/`.
    @Test func blobsAreFilesAtTheirContentAddressedPaths() async throws {
        try await withTemporaryDirectory { root in
            let store = try makeStore(root)
            let digest = Digest.of(bytes)
            let id = try await store.startUpload(expecting: digest).id
            _ = try await store.append(
                id, at: 0, buffers(ByteBuffer(bytes: bytes[..<1000]), ByteBuffer(bytes: bytes[1000...])))
            #expect(Set(files(in: store.directory.uploads)) == ["\(id)", "\(id).digest", "\(id).hash"])
            _ = try await store.commitUpload(id, expecting: digest)
            #expect(store.directory.blob(digest).path.hasSuffix("blobs/sha256/\(digest.hex.prefix(2))/\(digest.hex)"))
            #expect(Array(try Data(contentsOf: store.directory.blob(digest))) == bytes)
            #expect(files(in: store.directory.uploads).isEmpty)
            _ = try await store.put(buffers(ByteBuffer(bytes: bytes)), expecting: digest)
            #expect(
                files(in: store.directory.blobs) == [
                    "\(digest.hex.prefix(2))", "\(digest.hex.prefix(2))/\(digest.hex)",
                ])
            #expect(files(in: store.directory.uploads).isEmpty)
        }
    }

    /// A lock held for a moment by another open description of the upload's file (what a child process holds
    /// between its fork and its exec, when it was spawned while the file was open) delays an append and a
    /// commit, and fails neither; a lock held for good is a busy upload.
    @Test func aMomentaryLockOnAnUploadDelaysItsCommit() async throws {
        try await withTemporaryDirectory { root in
            let store = try makeStore(root)
            let digest = Digest.of(bytes)
            let id = try await store.startUpload(expecting: nil).id
            let holder = try POSIXFile.open(store.directory.upload(id).path, flags: O_RDONLY)
            #expect(try holder.tryLock())
            // A thread of its own, not a shared queue: under a loaded test run, the queue's turn came later than
            // the second the store waits.
            Thread {
                usleep(100_000)
                try? holder.close()
            }.start()
            _ = try await store.append(id, at: 0, buffers(ByteBuffer(bytes: bytes)))
            let again = try POSIXFile.open(store.directory.upload(id).path, flags: O_RDONLY)
            #expect(try again.tryLock())
            Thread {
                usleep(100_000)
                try? again.close()
            }.start()
            #expect(try await store.commitUpload(id, expecting: digest).size == Int64(bytes.count))

            let busy = try await store.startUpload(expecting: nil).id
            let forever = try POSIXFile.open(store.directory.upload(busy).path, flags: O_RDONLY)
            defer { try? forever.close() }
            #expect(try forever.tryLock())
            let error = await #expect(throws: RegistryError.self) {
                _ = try await store.append(busy, at: 0, buffers(ByteBuffer(bytes: [1])))
            }
            #expect(error?.code == .uploadBusy)
        }
    }

    /// A crash after bytes reached the file but before the hash state was saved: the bytes past the saved
    /// state are hashed from the file. A damaged state, or one past the bytes on disk, is hashed anew.
    @Test(arguments: ["behind", "damaged", "ahead"])
    func aHashStateThatDoesNotMatchTheBytesIsRebuiltFromThem(_ state: String) async throws {
        try await withTemporaryDirectory { root in
            let store = try makeStore(root)
            let digest = Digest.of(bytes)
            let id = try await store.startUpload(expecting: digest).id
            _ = try await store.append(id, at: 0, buffers(ByteBuffer(bytes: bytes[..<4000])))
            let statePath = store.directory.uploadHashState(id).path
            switch state {
            case "behind":
                let handle = try FileHandle(forWritingTo: store.directory.upload(id))
                try handle.seekToEnd()
                try handle.write(contentsOf: bytes[4000..<6000])
                try handle.close()
            case "damaged":
                try Data([1, 2, 3]).write(to: URL(fileURLWithPath: statePath))
            default:
                var hasher = ContentHasher()
                hasher.update(Array(bytes[..<5000]))
                try Data(hasher.savedState).write(to: URL(fileURLWithPath: statePath))
            }
            let resumed = try await FileSystemBlobStore(directory: store.directory).startUpload(expecting: digest)
            let offset: Int64 = state == "behind" ? 6000 : 4000
            #expect(resumed == StartedUpload(id: id, offset: offset, resumed: true))
            _ = try await store.append(id, at: offset, buffers(ByteBuffer(bytes: bytes[Int(offset)...])))
            #expect(try await store.commitUpload(id, expecting: digest).size == Int64(bytes.count))
        }
    }

    /// Readiness: the store takes writes where uploads go, and says so when it cannot.
    @Test func writabilityIsCheckedWhereUploadsAreWritten() async throws {
        try await withTemporaryDirectory { root in
            let store = try makeStore(root)
            try await store.checkWritable()
            #expect(files(in: store.directory.uploads).isEmpty, "the probe is removed")
            // Root writes through permission bits, so the uploads directory is replaced by a file instead.
            try FileManager.default.removeItem(at: store.directory.uploads)
            try Data().write(to: store.directory.uploads)
            let refused = await #expect(throws: RegistryError.self) { try await store.checkWritable() }
            #expect(refused?.message.contains(store.directory.uploads.path) == true, "\(String(describing: refused))")
        }
    }

    /// Long work that fills NIO's shared blocking pool holds up neither a read nor the readiness probe: the
    /// store waits on the disk with threads of its own.
    @Test func readsAndProbesDoNotWaitForTheSharedBlockingPool() async throws {
        try await withTemporaryDirectory { root in
            let store = try makeStore(root)
            let bytes = Array("bytes".utf8)
            let digest = try await store.put(buffers(ByteBuffer(bytes: bytes)), expecting: Digest.of(bytes)).digest
            let release = DispatchSemaphore(value: 0)
            let blockers = NIOSingletons.blockingPoolThreadCountSuggestion
            for _ in 0..<blockers { NIOThreadPool.singleton.submit { _ in release.wait() } }
            // On a thread of the test's own: the cooperative pool can be held for minutes by the suites that
            // wait for processes synchronously, which would time out the race below whatever the store does.
            let finished = try await withTaskExecutorPreference(QueueExecutor()) {
                try await withThrowingTaskGroup(of: Bool.self) { group in
                    group.addTask {
                        try await store.checkWritable()
                        var read: [UInt8] = []
                        for try await chunk in try await store.read(digest, range: 0..<5) {
                            read += Array(buffer: chunk)
                        }
                        return read == bytes
                    }
                    group.addTask {
                        try await Task.sleep(for: .seconds(20))
                        return false
                    }
                    // The blockers go before the group ends, which waits for a probe stuck behind them.
                    let first: Bool
                    do {
                        first = try await group.next() ?? false
                    } catch {
                        for _ in 0..<blockers { release.signal() }
                        throw error
                    }
                    for _ in 0..<blockers { release.signal() }
                    group.cancelAll()
                    return first
                }
            }
            #expect(finished, "the probe and the read waited for the shared pool")
        }
    }

    /// The sweep also removes what interrupted writes left in `uploads/`: records whose upload is gone, and
    /// temporary files (Foundation's atomic writes of earlier versions), hash states never renamed.
    @Test func staleLeftoversAreSwept() async throws {
        try await withTemporaryDirectory { root in
            let store = try makeStore(root)
            let stale = try await store.startUpload(expecting: Digest.of(bytes))
            _ = try await store.append(stale.id, at: 0, buffers(ByteBuffer(bytes: bytes[..<5000])))
            let fresh = try await store.startUpload(expecting: nil).id
            let orphan = UploadID()
            let leftovers = [
                store.directory.uploads.appendingPathComponent(".dat.nosyncBA8.y71BqC"),
                store.directory.uploadHashState(orphan), store.directory.uploadExpectation(orphan),
                store.directory.uploads.appendingPathComponent("\(orphan).hash.tmp"),
            ]
            for url in leftovers { try Data("sha256:".utf8).write(to: url) }
            let twoDaysAgo = Date().addingTimeInterval(-2 * 86400)
            let aged = [store.directory.upload(stale.id), store.directory.uploadExpectation(stale.id)] + leftovers
            for url in aged {
                try FileManager.default.setAttributes([.modificationDate: twoDaysAgo], ofItemAtPath: url.path)
            }
            let removed = try await store.removeStaleUploads(untouchedSince: Date().addingTimeInterval(-86400))
            #expect(removed == [stale.id])
            #expect(files(in: store.directory.uploads) == [fresh.value])
        }
    }

    @Test func uploadIDsCannotEscapeTheUploadsDirectory() {
        for text in ["../registry.sqlite", "x", "", "00000000-0000-0000-0000-000000000000/../a"] {
            #expect(throws: RegistryError.self) { try UploadID(text) }
        }
    }
}
