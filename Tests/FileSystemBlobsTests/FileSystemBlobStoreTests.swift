import FileSystemBlobs
import Foundation
import ModelRegistryCore
import NIOCore
import NIOPosix
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
            let offset = try await store.append(
                id, at: 0, Chunks(parts: [Array(bytes[..<1000]), Array(bytes[1000...])]))
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

    /// Ranged reads stream the bytes in chunks of at most 1 MiB, each iteration from the start of its range.
    @Test func rangedReadsStreamTheBytesAsked() async throws {
        try await withTemporaryDirectory { root in
            let store = try makeStore(root)
            let large = (0..<(5 << 19)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 12) }
            let digest = Digest.of(large)
            let id = try store.createUpload()
            _ = try await store.append(id, at: 0, Chunks(parts: [large]))
            _ = try store.commitUpload(id, expecting: digest)
            for range: Range<Int64> in [0..<Int64(large.count), 7..<(2 << 20) + 5, 100..<101, 42..<42] {
                let bytes = try await store.read(digest, range: range)
                for _ in 0..<2 {
                    var collected: [UInt8] = []
                    for try await chunk in bytes {
                        #expect(chunk.readableBytes > 0 && chunk.readableBytes <= 1 << 20)
                        collected += Array(buffer: chunk)
                    }
                    #expect(collected == Array(large[Int(range.lowerBound)..<Int(range.upperBound)]), "\(range)")
                }
            }
            let past = await #expect(throws: RegistryError.self) {
                try await store.read(digest, range: 0..<Int64(large.count + 1))
            }
            #expect(past?.code == .integrity)
            let missing = await #expect(throws: RegistryError.self) {
                try await store.read(Digest.of(Array("absent".utf8)), range: 0..<1)
            }
            #expect(missing?.code == .notFound)
        }
    }

    /// The listing shows what is stored with its time; a quarantined blob leaves the listing and is never read
    /// again until it is stored anew, and then its quarantined copy can be released.
    @Test func listingQuarantineAndRelease() async throws {
        try await withTemporaryDirectory { root in
            let store = try makeStore(root)
            var digests: [Digest] = []
            for text in ["one", "two", "three"] {
                let bytes = Array(text.utf8)
                let id = try store.createUpload()
                _ = try await store.append(id, at: 0, Chunks(parts: [bytes]))
                digests.append(try store.commitUpload(id, expecting: Digest.of(bytes)).digest)
            }
            let listed = try await store.list()
            #expect(listed.map(\.digest) == digests.sorted())
            #expect(Set(listed.map(\.size)) == [3, 5])
            #expect(listed.allSatisfy { abs($0.stored.timeIntervalSinceNow) < 60 })
            #expect(try await store.quarantined().isEmpty)

            try await store.quarantine(digests[0])
            #expect(try await store.list().map(\.digest) == Array(digests[1...]).sorted())
            #expect(try await store.quarantined() == [digests[0]])
            #expect(try store.info(digests[0]) == nil)
            let unread = await #expect(throws: RegistryError.self) { try await store.read(digests[0], range: 0..<3) }
            #expect(unread?.code == .notFound)

            let id = try store.createUpload()
            _ = try await store.append(id, at: 0, Chunks(parts: [Array("one".utf8)]))
            _ = try store.commitUpload(id, expecting: digests[0])
            try await store.releaseQuarantine([digests[0]])
            #expect(try await store.quarantined().isEmpty)
            #expect(try await store.list().count == 3)
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

    /// Long work that fills NIO's shared blocking pool (a publish parsing weight headers) holds up neither a
    /// read nor the readiness probe: the store waits on the disk with threads of its own.
    @Test func readsAndProbesDoNotWaitForTheSharedBlockingPool() async throws {
        try await withTemporaryDirectory { root in
            let store = try makeStore(root)
            let bytes = Array("bytes".utf8)
            let id = try store.createUpload()
            _ = try await store.append(id, at: 0, Chunks(parts: [bytes]))
            let digest = try store.commitUpload(id, expecting: Digest.of(bytes)).digest
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

/// Uploads started for a digest are found again after their client died, and swept once stale.
@Suite struct ResumableUploadTests {
    let bytes: [UInt8] = Array((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 17) })

    func makeStore(_ root: URL) throws -> FileSystemBlobStore {
        let directory = DataDirectory(root.path)
        try directory.create()
        return FileSystemBlobStore(directory: directory)
    }

    @Test func anUploadStartedForADigestIsFoundAgain() async throws {
        try await withTemporaryDirectory { root in
            let store = try makeStore(root)
            let digest = Digest.of(bytes)
            let started = try store.startUpload(expecting: digest)
            #expect(started.offset == 0 && !started.resumed)
            await #expect(throws: Chunks.Dropped.self) {
                _ = try await store.append(started.id, at: 0, Chunks(parts: [Array(bytes[..<7000])], failAtEnd: true))
            }
            // A restarted server (a new store, no state in memory) hands the same upload back.
            let restarted = try makeStore(root)
            #expect(
                try restarted.startUpload(expecting: digest)
                    == StartedUpload(id: started.id, offset: 7000, resumed: true))
            let other = try restarted.startUpload(expecting: Digest.of(Array("other".utf8)))
            #expect(other.id != started.id && !other.resumed)

            _ = try await restarted.append(started.id, at: 7000, Chunks(parts: [Array(bytes[7000...])]))
            _ = try restarted.commitUpload(started.id, expecting: digest)
            try restarted.cancelUpload(other.id)
            #expect(files(in: restarted.directory.uploads).isEmpty, "the recorded digest goes with its upload")
            #expect(try !restarted.startUpload(expecting: digest).resumed)
        }
    }

    @Test func anUploadReceivingBytesIsNotHandedToAnotherClient() async throws {
        try await withTemporaryDirectory { root in
            let store = try makeStore(root)
            let digest = Digest.of(bytes)
            let started = try store.startUpload(expecting: digest)
            let (stream, continuation) = AsyncStream<ByteBuffer>.makeStream()
            let receiving = Task { try await store.append(started.id, at: 0, stream) }
            continuation.yield(ByteBuffer(bytes: bytes[..<1000]))
            try await waitForSize(1000, of: store.directory.upload(started.id))

            let second = try store.startUpload(expecting: digest)
            #expect(second.id != started.id && second.offset == 0)
            // Even a sweep that finds everything stale leaves an upload that is receiving bytes alone.
            let removed = try store.removeStaleUploads(untouchedSince: Date().addingTimeInterval(3600))
            #expect(removed == [second.id])
            continuation.yield(ByteBuffer(bytes: bytes[1000...]))
            continuation.finish()
            #expect(try await receiving.value == Int64(bytes.count))
            #expect(try store.commitUpload(started.id, expecting: digest).size == Int64(bytes.count))
        }
    }

    @Test func staleUploadsAreRemoved() async throws {
        try await withTemporaryDirectory { root in
            let store = try makeStore(root)
            let stale = try store.startUpload(expecting: Digest.of(bytes))
            _ = try await store.append(stale.id, at: 0, Chunks(parts: [Array(bytes[..<5000])]))
            let fresh = try store.createUpload()
            // The temporary file of an atomic write killed before its rename (Foundation's createFile names
            // it so), as the digest records of earlier versions could leave.
            let stray = store.directory.uploads.appendingPathComponent(".dat.nosyncBA8.y71BqC")
            try Data("sha256:".utf8).write(to: stray)
            let twoDaysAgo = Date().addingTimeInterval(-2 * 86400)
            for url in [store.directory.upload(stale.id), store.directory.uploadExpectation(stale.id), stray] {
                try FileManager.default.setAttributes([.modificationDate: twoDaysAgo], ofItemAtPath: url.path)
            }
            let removed = try store.removeStaleUploads(untouchedSince: Date().addingTimeInterval(-86400))
            #expect(removed == [stale.id])
            #expect(files(in: store.directory.uploads) == [fresh.value])
            #expect(throws: RegistryError.self) { try store.uploadOffset(stale.id) }
            #expect(try store.uploadOffset(fresh) == 0)
        }
    }

    func waitForSize(_ size: Int, of url: URL) async throws {
        while (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0 < size {
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}
