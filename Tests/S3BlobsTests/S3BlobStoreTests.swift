import Foundation
import ModelRegistryCore
import NIOCore
import PostgresMetadata
import TestServers
import Testing

@testable import S3Blobs

/// What the BlobStore conformance suite cannot ask of every backend: S3's part sizes, and multipart uploads
/// that no upload record names.
@Suite struct S3BlobStoreTests {
    /// Parts are at least S3's 5 MiB, and 10,000 of them (S3's limit) hold a 200 GiB blob.
    @Test func partsFitA200GiBBlobInS3sLimits() {
        #expect(MultipartWriter.partSize(1) >= 5 << 20)
        var total: Int64 = 0
        var parts = 0
        while total < 200 << 30 {
            parts += 1
            total += Int64(MultipartWriter.partSize(parts))
        }
        #expect(parts <= 10_000, "\(parts) parts")
        #expect(MultipartWriter.partSize(parts) <= 64 << 20, "the largest part held in memory")
    }

    /// A replica streams many blobs at once, each holding an S3 connection while its client reads slowly: 12
    /// reads open together all get their bytes (AsyncHTTPClient's default of 8 connections a host left the
    /// ninth waiting past the connect timeout).
    @Test func manyReadsAtOnceEachGetAConnection() async throws {
        let moto = try MotoServer.shared()
        let location = try S3Location(parsing: moto.url(bucket: try moto.createBucket(), prefix: "registry"))
        let client = S3Client(
            location: location,
            credentials: S3Credentials(accessKeyID: MotoServer.accessKey, secretAccessKey: MotoServer.secretKey))
        let object = ByteBuffer(repeating: 7, count: 4 << 20)
        try await client.put(location.key("object"), object)
        /// One open read, drained by a task of its own.
        final class OpenRead: @unchecked Sendable {
            var body: S3Body.AsyncIterator
            init(_ body: S3Body.AsyncIterator) { self.body = body }
        }
        var open: [OpenRead] = []
        for _ in 0..<12 {
            var body = try await client.get(location.key("object"), range: nil).makeAsyncIterator()
            _ = try await body.next()
            open.append(OpenRead(body))
        }
        // All drained at once: one by one, the last waited long enough on a loaded machine for moto to reset it.
        try await withThrowingTaskGroup(of: Int.self) { group in
            for read in open {
                group.addTask {
                    var count = 0
                    while let chunk = try await read.body.next() { count += chunk.readableBytes }
                    return count
                }
            }
            for try await count in group { #expect(count > 0) }
        }
    }

    /// Parts go up several at once; when S3 loses one, the upload goes back to the end of the last part S3
    /// confirmed, never past a part it lost, and a client that resumes from the offset it is told completes the
    /// blob with the right digest.
    @Test func aLostPartTakesTheUploadBackToTheLastConfirmedPart() async throws {
        let moto = try MotoServer.shared()
        let bucket = try moto.createBucket()
        // Cuts the first connection that sends 3 MiB once armed: one carrying a part.
        let proxy = try InterruptingProxy(
            to: moto.endpoint, direction: .toServer, after: 3 << 20, action: .cut, armed: false)
        defer { proxy.close() }
        let location = try S3Location(parsing: "s3://\(bucket)/registry?endpoint=\(proxy.url)&region=us-east-1")
        let database = try PostgresServer.shared().createDatabase()
        defer { try? PostgresServer.shared().dropDatabase(database) }
        let (_, store) = try await Self.store(at: location, database: database)

        let part = MultipartWriter.partSize(1)
        let bytes = (0..<(5 * part + (4 << 20))).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 13) }
        let digest = Digest.of(bytes)
        let upload = try await store.startUpload(expecting: digest)
        proxy.arm()
        await #expect(throws: (any Error).self) {
            _ = try await store.append(upload.id, at: 0, Self.chunks(bytes[...]))
        }
        #expect(proxy.interrupted)
        #expect(store.partsInFlight.bytesInUse == 0, "the failed parts gave their bytes back to the store's budget")
        let offset = try await store.uploadOffset(upload.id)
        #expect(offset % Int64(part) == 0 && offset < Int64(5 * part), "offset \(offset)")

        let end = try await store.append(upload.id, at: offset, Self.chunks(bytes[Int(offset)...]))
        #expect(end == Int64(bytes.count))
        #expect(try await store.commitUpload(upload.id, expecting: digest).size == Int64(bytes.count))
        var read: [UInt8] = []
        for try await chunk in try await store.read(digest, range: 0..<Int64(bytes.count)) {
            read += chunk.readableBytesView
        }
        #expect(read == bytes)
        #expect(store.partsInFlight.bytesInUse == 0)
    }

    /// Several uploads at once share the store's budget of part buffers, the ones being filled included (four
    /// uploads each filling a part and sending others held 72 MiB of 8 MiB buffers), each within its share once
    /// the others have begun (one that began first may hold more until its parts are confirmed), and give it all
    /// back.
    @Test func uploadsAtOnceHoldNoMoreThanTheStoresPartBudget() async throws {
        let moto = try MotoServer.shared()
        let location = try S3Location(parsing: moto.url(bucket: try moto.createBucket(), prefix: "registry"))
        let database = try PostgresServer.shared().createDatabase()
        defer { try? PostgresServer.shared().dropDatabase(database) }
        let (_, store) = try await Self.store(at: location, database: database)

        let part = MultipartWriter.partSize(1)
        let blobs = (0..<4).map { seed in
            (0..<(3 * part + part / 2)).map { UInt8(truncatingIfNeeded: $0 &* (31 + seed) &+ $0 >> 13) }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for bytes in blobs {
                group.addTask {
                    let info = try await store.put(Self.chunks(bytes[...]), expecting: Digest.of(bytes))
                    #expect(info.size == Int64(bytes.count))
                }
            }
            try await group.waitForAll()
        }
        let budget = store.partsInFlight
        #expect(budget.mostBytesInUse > part, "the uploads never held more than one part at once")
        #expect(
            budget.mostBytesInUse <= budget.limit + (blobs.count - 1) * part,
            "\(budget.mostBytesInUse) bytes of parts held at once")
        #expect(budget.bytesInUse == 0, "the uploads kept part bytes of the budget")
    }

    /// A client of `location` and a store over it whose upload records are in `database` of the shared
    /// PostgreSQL.
    static func store(at location: S3Location, database: String) async throws -> (S3Client, S3BlobStore) {
        let client = S3Client(
            location: location,
            credentials: S3Credentials(accessKeyID: MotoServer.accessKey, secretAccessKey: MotoServer.secretKey))
        let records = try PostgresMetadataStore(
            try PostgresLocation(parsing: try PostgresServer.shared().url(database) + "?sslmode=disable"),
            connectionWait: .seconds(600))
        try await records.migrate()
        return (client, S3BlobStore(client: client, location: location, uploads: records))
    }

    /// `bytes` in chunks a little over 1 MiB, so that parts end inside a chunk, as in a request body.
    static func chunks(_ bytes: ArraySlice<UInt8>) -> AsyncStream<ByteBuffer> {
        AsyncStream { continuation in
            var start = bytes.startIndex
            while start < bytes.endIndex {
                let end = min(start + (1 << 20) + 7, bytes.endIndex)
                continuation.yield(ByteBuffer(bytes: bytes[start..<end]))
                start = end
            }
            continuation.finish()
        }
    }

    /// A multipart upload that a replica began and never recorded (killed in the middle of a `put`) is aborted by
    /// the sweeper; one an upload record names stays with its upload.
    @Test func theSweeperAbortsMultipartUploadsNoRecordNames() async throws {
        let moto = try MotoServer.shared()
        let location = try S3Location(parsing: moto.url(bucket: try moto.createBucket(), prefix: "registry"))
        let database = try PostgresServer.shared().createDatabase()
        defer { try? PostgresServer.shared().dropDatabase(database) }
        let (client, store) = try await Self.store(at: location, database: database)

        let stray = try await client.createMultipartUpload(
            location.key("blobs/sha256/" + Digest.of(Array("stray".utf8)).hex))
        let recorded = try await store.startUpload(expecting: nil)
        // Moto dates every multipart upload 2010, so any cutoff takes the stray one; the record is newer.
        let removed = try await store.removeStaleUploads(untouchedSince: Date().addingTimeInterval(-60))
        #expect(removed.isEmpty)
        let left = try await client.listMultipartUploads(prefix: location.key(""))
        #expect(left.count == 1 && !left.contains { $0.uploadID == stray }, "\(left)")
        #expect(try await store.uploadOffset(recorded.id) == 0)
    }
}
