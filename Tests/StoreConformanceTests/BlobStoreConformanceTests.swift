import Foundation
import ModelRegistryCore
import NIOCore
import Testing

/// What every `BlobStore` backend must do. A new backend adds itself to `BlobBackend.all` and passes these.
@Suite struct BlobStoreConformanceTests {
    let bytes: [UInt8] = Array((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) })

    @Test(arguments: BlobBackend.all)
    func anUploadInPartsIsCommittedAndReadBack(backend: BlobBackend) async throws {
        try await backend.open { instance in
            let store = try instance()
            let digest = Digest.of(bytes)
            let started = try await store.startUpload(expecting: nil)
            #expect(started.offset == 0 && !started.resumed)
            var offset = try await store.append(started.id, at: 0, Chunks(parts: [Array(bytes[..<1000])]))
            #expect(offset == 1000)
            #expect(try await store.uploadOffset(started.id) == 1000)
            offset = try await store.append(
                started.id, at: 1000, Chunks(parts: [Array(bytes[1000..<70_000]), Array(bytes[70_000...])]))
            #expect(offset == Int64(bytes.count))
            #expect(try await store.info(digest) == nil, "nothing is stored before the commit")
            let info = try await store.commitUpload(started.id, expecting: digest)
            #expect(info == BlobInfo(digest: digest, size: Int64(bytes.count)))
            #expect(try await store.info(digest) == info)
            #expect(try await store.readAll(digest, 0..<Int64(bytes.count)) == bytes)
            let reader = try store.reader(digest)
            #expect(reader.size == Int64(bytes.count))
            #expect(Array(buffer: try reader.read(at: 10, maxLength: 5)) == Array(bytes[10..<15]))
            #expect(try reader.read(at: Int64(bytes.count), maxLength: 5).readableBytes == 0)
            let gone = await #expect(throws: RegistryError.self) { try await store.uploadOffset(started.id) }
            #expect(gone?.code == .notFound, "a committed upload is gone")
        }
    }

    /// A blob larger than an object store's upload part (8 MiB): appended in pieces that end inside and across
    /// parts, partly through a second instance, committed and read back; and stored by `put` in one stream.
    @Test(arguments: BlobBackend.all)
    func aBlobLargerThanAnUploadPart(backend: BlobBackend) async throws {
        try await backend.open { instance in
            let (first, second) = (try instance(), try instance())
            let large = (0..<(21 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 14) }
            let digest = Digest.of(large)
            let started = try await first.startUpload(expecting: nil)
            var offset: Int64 = 0
            for (index, end) in [3 << 20, 13 << 20, 17 << 20, 21 << 20].enumerated() {
                let store = index % 2 == 0 ? first : second
                let piece = Array(large[Int(offset)..<end])
                offset = try await store.append(
                    started.id, at: offset,
                    Chunks(
                        parts: stride(from: 0, to: piece.count, by: 1 << 20).map {
                            Array(piece[$0..<min($0 + (1 << 20), piece.count)])
                        }))
                #expect(offset == Int64(end))
            }
            #expect(try await second.commitUpload(started.id, expecting: digest).size == Int64(large.count))
            #expect(Digest.of(try await first.readAll(digest, 0..<Int64(large.count))) == digest)
            #expect(
                try await first.readAll(digest, (9 << 20)..<(9 << 20) + 10) == Array(large[(9 << 20)..<(9 << 20) + 10]))
            #expect(try await first.delete(digest))

            let put = try await second.put(
                Chunks(
                    parts: stride(from: 0, to: large.count, by: 3 << 20).map {
                        Array(large[$0..<min($0 + (3 << 20), large.count)])
                    }),
                expecting: digest)
            #expect(put == BlobInfo(digest: digest, size: Int64(large.count)))
            #expect(Digest.of(try await first.readAll(digest, 0..<Int64(large.count))) == digest)
            let wrong = await #expect(throws: RegistryError.self) {
                try await first.put(Chunks(parts: [large, [1]]), expecting: Digest.of(large + [2]))
            }
            #expect(wrong?.code == .digestMismatch)
            #expect(try await first.list().map(\.digest) == [digest])
        }
    }

    /// Ranged reads give exactly the range, in chunks of at most 1 MiB, anew each iteration.
    @Test(arguments: BlobBackend.all)
    func rangedReadsStreamTheBytesAsked(backend: BlobBackend) async throws {
        try await backend.open { instance in
            let store = try instance()
            let large = (0..<(5 << 19)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 12) }
            let digest = try await store.put(large).digest
            for range: Range<Int64> in [0..<Int64(large.count), 7..<(2 << 20) + 5, 100..<101, 42..<42] {
                let stream = try await store.read(digest, range: range)
                for _ in 0..<2 {
                    var collected: [UInt8] = []
                    for try await chunk in stream {
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
            #expect(throws: RegistryError.self) { try store.reader(Digest.of(Array("absent".utf8))) }
        }
    }

    @Test(arguments: BlobBackend.all)
    func aFileRegionHoldsTheBytesAskedWhereBlobsAreLocalFiles(backend: BlobBackend) async throws {
        try await backend.open { instance in
            let store = try instance()
            let large = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 17 &+ $0 >> 9) }
            let digest = try await store.put(large).digest
            let range: Range<Int64> = 5..<(2 << 20) + 3
            let region = try await store.fileRegion(digest, range: range)
            #expect((region != nil) == backend.localFiles)
            guard let region else { return }
            let (fileRegion, file) = try #require(region.take())
            #expect(region.take() == nil, "a region is written once")
            var read = [UInt8](repeating: 0, count: fileRegion.readableBytes)
            let count = try file.withUnsafeFileDescriptor { descriptor in
                read.withUnsafeMutableBytes {
                    pread(descriptor, $0.baseAddress, $0.count, off_t(fileRegion.readerIndex))
                }
            }
            try file.close()
            #expect(count == range.count && read == Array(large[Int(range.lowerBound)..<Int(range.upperBound)]))
            let past = await #expect(throws: RegistryError.self) {
                try await store.fileRegion(digest, range: 0..<Int64(large.count + 1))
            }
            #expect(past?.code == .integrity)
            let missing = await #expect(throws: RegistryError.self) {
                try await store.fileRegion(Digest.of(Array("absent".utf8)), range: 0..<1)
            }
            #expect(missing?.code == .notFound)
        }
    }

    @Test(arguments: BlobBackend.all)
    func aWrongDigestStoresNothing(backend: BlobBackend) async throws {
        try await backend.open { instance in
            let store = try instance()
            let wrong = Digest.of(Array("something else".utf8))
            let id = try await store.startUpload(expecting: nil).id
            _ = try await store.append(id, at: 0, Chunks(parts: [bytes]))
            let error = await #expect(throws: RegistryError.self) { try await store.commitUpload(id, expecting: wrong) }
            #expect(error?.code == .digestMismatch)
            let put = await #expect(throws: RegistryError.self) {
                try await store.put(Chunks(parts: [bytes]), expecting: wrong)
            }
            #expect(put?.code == .digestMismatch)
            #expect(try await store.info(wrong) == nil)
            #expect(try await store.info(Digest.of(bytes)) == nil)
            #expect(try await store.list().isEmpty)
            await #expect(throws: RegistryError.self) { try await store.uploadOffset(id) }
            #expect(try await store.removeStaleUploads(untouchedSince: Date().addingTimeInterval(3600)).isEmpty)
        }
    }

    /// A client's stream broke; another instance of the store (another replica, or the server restarted)
    /// takes the upload on from the offset it reached and finishes its hash.
    @Test(arguments: BlobBackend.all)
    func anUploadIsResumedByASecondInstance(backend: BlobBackend) async throws {
        try await backend.open { instance in
            let first = try instance()
            let digest = Digest.of(bytes)
            let started = try await first.startUpload(expecting: digest)
            await #expect(throws: Chunks.Dropped.self) {
                _ = try await first.append(started.id, at: 0, Chunks(parts: [Array(bytes[..<5000])], failAtEnd: true))
            }
            #expect(try await first.uploadOffset(started.id) == 5000)

            let second = try instance()
            #expect(try await second.uploadOffset(started.id) == 5000)
            #expect(
                try await second.startUpload(expecting: digest)
                    == StartedUpload(id: started.id, offset: 5000, resumed: true))
            let other = try await second.startUpload(expecting: Digest.of(Array("other".utf8)))
            #expect(other.id != started.id && !other.resumed)
            let error = await #expect(throws: RegistryError.self) {
                _ = try await second.append(started.id, at: 0, Chunks(parts: [bytes]))
            }
            #expect(error?.code == .uploadOffsetMismatch)
            _ = try await second.append(started.id, at: 5000, Chunks(parts: [Array(bytes[5000..<9000])]))
            _ = try await first.append(started.id, at: 9000, Chunks(parts: [Array(bytes[9000...])]))
            #expect(try await second.commitUpload(started.id, expecting: digest).size == Int64(bytes.count))
            #expect(try await first.readAll(digest, 0..<Int64(bytes.count)) == bytes)
            #expect(try await !second.startUpload(expecting: digest).resumed, "the committed upload is not offered")
        }
    }

    /// An upload receiving bytes belongs to its request: no other instance appends to it, commits, cancels
    /// or sweeps it, and a client asking for an upload of the same digest gets a new one.
    @Test(arguments: BlobBackend.all)
    func anUploadReceivingBytesIsBusyForEveryInstance(backend: BlobBackend) async throws {
        try await backend.open { instance in
            let store = try instance()
            let other = try instance()
            let digest = Digest.of(bytes)
            let started = try await store.startUpload(expecting: digest)
            let (stream, continuation) = AsyncStream<ByteBuffer>.makeStream()
            let (firstSeen, seen) = AsyncStream<Void>.makeStream()
            let receiving = Task {
                try await store.append(
                    started.id, at: 0,
                    stream.map { buffer in
                        seen.yield()
                        return buffer
                    })
            }
            continuation.yield(ByteBuffer(bytes: bytes[..<1000]))
            for await _ in firstSeen { break }

            for candidate in [store, other] {
                let busy = await #expect(throws: RegistryError.self) {
                    _ = try await candidate.append(started.id, at: 0, Chunks(parts: [bytes]))
                }
                #expect(busy?.code == .uploadBusy)
                let commit = await #expect(throws: RegistryError.self) {
                    try await candidate.commitUpload(started.id, expecting: digest)
                }
                #expect(commit?.code == .uploadBusy)
                let cancel = await #expect(throws: RegistryError.self) { try await candidate.cancelUpload(started.id) }
                #expect(cancel?.code == .uploadBusy)
            }
            let second = try await other.startUpload(expecting: digest)
            #expect(second.id != started.id && second.offset == 0)
            let removed = try await other.removeStaleUploads(untouchedSince: Date().addingTimeInterval(3600))
            #expect(removed == [second.id], "a sweep leaves an upload receiving bytes alone, however old")

            continuation.yield(ByteBuffer(bytes: bytes[1000...]))
            continuation.finish()
            #expect(try await receiving.value == Int64(bytes.count))
            #expect(try await other.commitUpload(started.id, expecting: digest).size == Int64(bytes.count))
        }
    }

    @Test(arguments: BlobBackend.all)
    func cancellingRemovesTheUpload(backend: BlobBackend) async throws {
        try await backend.open { instance in
            let store = try instance()
            let digest = Digest.of(bytes)
            let id = try await store.startUpload(expecting: digest).id
            _ = try await store.append(id, at: 0, Chunks(parts: [bytes]))
            try await store.cancelUpload(id)
            let again = await #expect(throws: RegistryError.self) { try await store.cancelUpload(id) }
            #expect(again?.code == .notFound)
            #expect(try await !store.startUpload(expecting: digest).resumed)
            #expect(try await store.info(digest) == nil)
        }
    }

    /// Idle uploads older than the cutoff go; newer ones stay.
    @Test(arguments: BlobBackend.all)
    func staleUploadsAreRemoved(backend: BlobBackend) async throws {
        try await backend.open { instance in
            let store = try instance()
            let first = try await store.startUpload(expecting: Digest.of(bytes)).id
            _ = try await store.append(first, at: 0, Chunks(parts: [Array(bytes[..<5000])]))
            let second = try await store.startUpload(expecting: nil).id
            #expect(try await store.removeStaleUploads(untouchedSince: Date().addingTimeInterval(-3600)).isEmpty)
            let removed = try await store.removeStaleUploads(untouchedSince: Date().addingTimeInterval(3600))
            #expect(Set(removed) == [first, second])
            for id in [first, second] {
                await #expect(throws: RegistryError.self) { try await store.uploadOffset(id) }
            }
        }
    }

    /// Storing bytes that are stored already keeps one copy and refreshes its stored time, which restarts
    /// garbage collection's grace period; concurrent stores of the same bytes all succeed.
    @Test(arguments: BlobBackend.all)
    func storingTheSameBytesAgainKeepsOneCopy(backend: BlobBackend) async throws {
        try await backend.open { instance in
            let stores = [try instance(), try instance()]
            let bytes = self.bytes
            let info = try await stores[0].put(bytes)
            let stored = try #require(try await stores[0].list().first?.stored)
            try await Task.sleep(for: .milliseconds(20))
            let infos = try await withThrowingTaskGroup(of: BlobInfo.self) { group in
                for index in 0..<8 { group.addTask { try await stores[index % 2].put(bytes) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(infos == Array(repeating: info, count: 8))
            let listed = try await stores[1].list()
            #expect(listed.map(\.digest) == [info.digest])
            #expect(try #require(listed.first?.stored) > stored)
            #expect(try await stores[1].readAll(info.digest, 0..<info.size) == bytes)
        }
    }

    @Test(arguments: BlobBackend.all)
    func deletingRemovesABlob(backend: BlobBackend) async throws {
        try await backend.open { instance in
            let store = try instance()
            let kept = try await store.put(Array("kept".utf8))
            let deleted = try await store.put(bytes)
            #expect(try await store.delete(deleted.digest))
            #expect(try await !store.delete(deleted.digest), "a second delete finds nothing")
            #expect(try await store.info(deleted.digest) == nil)
            let read = await #expect(throws: RegistryError.self) { try await store.read(deleted.digest, range: 0..<1) }
            #expect(read?.code == .notFound)
            #expect(try await store.list().map(\.digest) == [kept.digest])
            #expect(try await store.put(bytes) == deleted, "deleted bytes can be stored again")
        }
    }

    /// A deletion with a cutoff takes only a blob last stored before it: one stored again since is kept.
    @Test(arguments: BlobBackend.all)
    func aDeletionWithACutoffKeepsABlobStoredAgain(backend: BlobBackend) async throws {
        try await backend.open { instance in
            let store = try instance()
            let info = try await store.put(bytes)
            let stored = try #require(try await store.list().first?.stored)
            #expect(try await !store.delete(info.digest, storedBefore: stored.addingTimeInterval(-1)))
            #expect(try await store.info(info.digest) == info)
            #expect(try await store.readAll(info.digest, 0..<info.size) == bytes)
            #expect(try await store.delete(info.digest, storedBefore: Date().addingTimeInterval(1)))
            #expect(try await store.info(info.digest) == nil)
            #expect(try await store.list().isEmpty)
        }
    }

    /// The listing shows what is stored with its time; a quarantined blob leaves the listing and is never read
    /// again until it is stored anew, and then its quarantined copy can be released.
    @Test(arguments: BlobBackend.all)
    func listingQuarantineAndRelease(backend: BlobBackend) async throws {
        try await backend.open { instance in
            let store = try instance()
            var digests: [Digest] = []
            // A second of slack for a file system's coarse clock; none for how long the test waits for a thread.
            let start = Date().addingTimeInterval(-1)
            for text in ["one", "two", "three"] { digests.append(try await store.put(Array(text.utf8)).digest) }
            let end = Date().addingTimeInterval(1)
            let listed = try await store.list()
            #expect(listed.map(\.digest) == digests.sorted())
            #expect(Set(listed.map(\.size)) == [3, 5])
            #expect(listed.allSatisfy { start <= $0.stored && $0.stored <= end }, "\(listed)")
            #expect(try await store.quarantined().isEmpty)

            try await store.quarantine(digests[0])
            #expect(try await store.list().map(\.digest) == Array(digests[1...]).sorted())
            #expect(try await instance().quarantined() == [digests[0]])
            #expect(try await store.info(digests[0]) == nil)
            let unread = await #expect(throws: RegistryError.self) { try await store.read(digests[0], range: 0..<3) }
            #expect(unread?.code == .notFound)

            _ = try await store.put(Array("one".utf8))
            try await store.releaseQuarantine([digests[0]])
            #expect(try await store.quarantined().isEmpty)
            #expect(try await store.list().count == 3)
        }
    }

    @Test(arguments: BlobBackend.all)
    func directDownloadsAndWritability(backend: BlobBackend) async throws {
        try await backend.open { instance in
            let store = try instance()
            try await store.checkWritable()
            let info = try await store.put(bytes)
            let url = try await store.directDownloadURL(info.digest, validFor: .seconds(60))
            #expect((url != nil) == backend.presigns)
            if let url { #expect(url.scheme == "https" || url.scheme == "http") }
        }
    }
}
