import AsyncHTTPClient
import Foundation
import ModelRegistryCore
import NIOCore
import Synchronization

/// Blobs as objects of an S3-compatible bucket, shared by every replica. A blob appears under its key only
/// whole and checked: small blobs go up in one PUT once their digest is checked, larger ones as a multipart
/// upload completed only after the digest over every byte matched (an aborted one leaves nothing). Uploads
/// that span requests keep their state in an `UploadRecordStore` (PostgreSQL), so any replica continues them.
///
/// Every key is derived in `S3BlobKeys`.
public final class S3BlobStore: BlobStore {
    let client: S3Client
    let keys: S3BlobKeys
    let uploads: any UploadRecordStore
    /// How long a hold lasts unless renewed (every third of it while the request appends): a replica killed
    /// mid-append leaves its upload busy this long.
    let holdLength: TimeInterval
    /// The part buffers all this store's uploads may hold at once, being filled or on their way to S3: one
    /// upload sends four parts while it fills a fifth; several at once share them.
    let partsInFlight = PartBudget(limit: 40 << 20)

    /// `holdLength` is 30 s by default; tests whose threads may starve for longer raise it.
    public init(client: S3Client, location: S3Location, uploads: any UploadRecordStore, holdLength: TimeInterval = 30) {
        self.client = client
        self.keys = S3BlobKeys(location: location)
        self.uploads = uploads
        self.holdLength = holdLength
    }

    // MARK: Blobs

    public func info(_ digest: Digest) async throws(RegistryError) -> BlobInfo? {
        try await client.head(keys.blob(digest)).map { BlobInfo(digest: digest, size: $0.size) }
    }

    public func reader(_ digest: Digest) throws(RegistryError) -> any BlobReader {
        let key = keys.blob(digest)
        guard let object = try client.headBlocking(key) else {
            throw RegistryError.notFound("blob \(digest)")
        }
        return S3BlobReader(client: client, key: key, size: object.size)
    }

    public func read(_ digest: Digest, range: Range<Int64>) async throws(RegistryError) -> BlobBytes {
        guard let object = try await client.head(keys.blob(digest)) else {
            throw RegistryError.notFound("blob \(digest)")
        }
        guard range.lowerBound >= 0, range.upperBound <= object.size else {
            throw RegistryError(
                .integrity, "blob \(digest) holds \(object.size) bytes, fewer than the \(range.upperBound) asked for")
        }
        let (client, key) = (client, keys.blob(digest))
        return BlobBytes {
            let body = RangedBody(client: client, key: key, digest: digest, range: range)
            return { try await body.next() }
        }
    }

    /// Not local files: the registry streams the bytes.
    public func fileRegion(_ digest: Digest, range: Range<Int64>) async throws(RegistryError) -> BlobFileRegion? {
        nil
    }

    public func directDownloadURL(_ digest: Digest, validFor: Duration) async throws(RegistryError) -> URL? {
        client.presignedGET(keys.blob(digest), validFor: validFor)
    }

    public func put<Bytes: AsyncSequence & Sendable>(_ bytes: Bytes, expecting digest: Digest) async throws -> BlobInfo
    where Bytes.Element == ByteBuffer {
        let key = keys.blob(digest)
        if let stored = try await info(digest) {
            // The bytes must still be the digest's: a client is told its bytes are stored only if they are.
            var hasher = ContentHasher()
            for try await chunk in bytes { chunk.withUnsafeReadableBytes { hasher.update($0) } }
            try Self.check(hasher, against: digest)
            try await markStored(digest)
            return stored
        }
        var iterator = bytes.makeAsyncIterator()
        var first = ByteBuffer()
        while first.readableBytes < MultipartWriter.partSize(1), let chunk = try await iterator.next() {
            first.writeImmutableBuffer(chunk)
        }
        let size: Int64
        if first.readableBytes < MultipartWriter.partSize(1) {
            var hasher = ContentHasher()
            first.withUnsafeReadableBytes { hasher.update($0) }
            try Self.check(hasher, against: digest)
            try await client.put(key, first)
            size = Int64(first.readableBytes)
        } else {
            let uploadID = try await client.createMultipartUpload(key)
            var writer = try MultipartWriter(
                client: client, budget: partsInFlight, state: MultipartState(key: key, uploadID: uploadID))
            do {
                try await writer.add(first)
                first = ByteBuffer()  // copied into the writer's part: not held for the rest of the upload
                while let chunk = try await iterator.next() { try await writer.add(chunk) }
                let hasher = try await writer.finish()
                try Self.check(hasher, against: digest)
                try await client.completeMultipartUpload(key, uploadID: uploadID, parts: writer.state.parts)
            } catch {
                await writer.cancel()
                try? await client.abortMultipartUpload(key, uploadID: uploadID)
                throw error
            }
            size = writer.offset
        }
        try await markStored(digest)
        return BlobInfo(digest: digest, size: size)
    }

    /// Records a store of the blob: an empty marker object whose key holds the time in milliseconds. S3 cannot
    /// touch an object's time in place (a copy onto itself is limited to 5 GiB) and keeps times to the second,
    /// too coarse to tell a store from a deletion's cutoff. Earlier markers go.
    private func markStored(_ digest: Digest) async throws(RegistryError) {
        let key = keys.stored(digest, at: Date())
        try await client.put(key, ByteBuffer())
        for marker in try await client.list(prefix: keys.storedPrefix(digest)) where marker.key < key {
            try await client.delete(marker.key)
        }
    }

    /// The blob's stored times: its own and its markers'.
    private func storedTimes(_ objects: [S3Object]) -> [Digest: Date] {
        var times: [Digest: Date] = [:]
        for object in objects {
            if let digest = keys.digest(object.key, under: keys.blobPrefix) {
                times[digest] = max(times[digest] ?? .distantPast, object.lastModified)
            } else if let (digest, time) = keys.marker(object.key) {
                times[digest] = max(times[digest] ?? .distantPast, time)
            }
        }
        return times
    }

    private func removeMarkers(_ digest: Digest) async throws(RegistryError) {
        for marker in try await client.list(prefix: keys.storedPrefix(digest)) { try await client.delete(marker.key) }
    }

    public func delete(_ digest: Digest, storedBefore cutoff: Date?) async throws(RegistryError) -> Bool {
        guard let object = try await client.head(keys.blob(digest)) else { return false }
        if let cutoff {
            let markers = try await client.list(prefix: keys.storedPrefix(digest))
            guard let stored = storedTimes([object] + markers)[digest], stored < cutoff else { return false }
        }
        try await client.delete(keys.blob(digest))
        try await removeMarkers(digest)
        return true
    }

    public func list() async throws(RegistryError) -> [StoredBlob] {
        let markers = storedTimes(try await client.list(prefix: keys.storedPrefix))
        return try await client.list(prefix: keys.blobPrefix).compactMap { object in
            guard let digest = keys.digest(object.key, under: keys.blobPrefix) else { return nil }
            return StoredBlob(
                digest: digest, size: object.size, stored: max(object.lastModified, markers[digest] ?? .distantPast))
        }.sorted { $0.digest < $1.digest }
    }

    public func quarantine(_ digest: Digest) async throws(RegistryError) {
        guard let object = try await client.head(keys.blob(digest)) else { return }
        try await client.copy(from: keys.blob(digest), to: keys.quarantined(digest), size: object.size)
        try await client.delete(keys.blob(digest))
        try await removeMarkers(digest)
    }

    public func quarantined() async throws(RegistryError) -> [Digest] {
        try await client.list(prefix: keys.quarantinePrefix).compactMap {
            keys.digest($0.key, under: keys.quarantinePrefix)
        }
        .sorted()
    }

    public func releaseQuarantine(_ digests: [Digest]) async throws(RegistryError) {
        for digest in digests where try await client.head(keys.blob(digest)) != nil {
            try await client.delete(keys.quarantined(digest))
        }
    }

    public func checkWritable() async throws(RegistryError) {
        try await client.checkBucket()
    }

    // MARK: Uploads

    /// A digest-less upload's parts go to a key of its own, copied to the digest's at the commit.
    public let copiesUploadsWithoutDigest = true

    public func startUpload(expecting digest: Digest?) async throws(RegistryError) -> StartedUpload {
        try await recordErrors {
            if let digest, let idle = try await uploads.idleUpload(expecting: digest) {
                return StartedUpload(id: idle.id, offset: idle.offset, resumed: true)
            }
            let id = UploadID()
            // With its digest known, the upload's parts go straight to the blob's key, seen only once complete.
            let key = digest.map { keys.blob($0) } ?? keys.uploadData(id)
            let state = MultipartState(key: key, uploadID: try await client.createMultipartUpload(key))
            try await uploads.createUpload(
                UploadRecord(id: id, expected: digest, offset: 0, state: try state.encoded(), updatedAt: Date()))
            return StartedUpload(id: id, offset: 0, resumed: false)
        }
    }

    public func uploadOffset(_ id: UploadID) async throws(RegistryError) -> Int64 {
        try await recordErrors {
            guard let record = try await uploads.upload(id) else { throw RegistryError.notFound("upload \(id)") }
            return record.offset
        }
    }

    public func append<Bytes: AsyncSequence>(_ id: UploadID, at offset: Int64, _ bytes: Bytes) async throws -> Int64
    where Bytes.Element == ByteBuffer {
        let hold = UploadHold(id: id)
        var record = try await uploads.holdUpload(hold, until: Date().addingTimeInterval(holdLength))
        guard record.offset == offset else {
            try? await uploads.releaseHold(hold)
            throw RegistryError(
                .uploadOffsetMismatch, "upload \(id) holds \(record.offset) bytes; continue from there, not \(offset)")
        }
        var writer = try MultipartWriter(
            client: client, budget: partsInFlight, state: try MultipartState(decoding: record.state))
        var failure: (any Error)?
        // Renewed on a clock, not as bytes arrive: sending a large part to S3 can outlast a hold.
        let renewal = Task { [uploads, holdLength] in
            while true {
                try await Task.sleep(for: .seconds(holdLength / 3))
                try await uploads.renewHold(hold, until: Date().addingTimeInterval(holdLength))
            }
        }
        do {
            try await writer.resume(tail: keys.uploadTail(id))
            for try await chunk in bytes { try await writer.add(chunk) }
        } catch {
            failure = error
        }
        if let error = await writer.settle() { failure = failure ?? error }
        renewal.cancel()
        // What arrived stays, a broken stream's bytes too: the bytes past the last part are the tail.
        do {
            try await writer.keepTail(keys.uploadTail(id))
            record.offset = writer.offset
            record.state = try writer.state.encoded()
            record.updatedAt = Date()
            try await uploads.saveUpload(record, releasing: hold)
        } catch {
            try? await uploads.releaseHold(hold)
            throw failure ?? error
        }
        if let failure { throw failure }
        return record.offset
    }

    public func commitUpload(_ id: UploadID, expecting digest: Digest) async throws(RegistryError) -> BlobInfo {
        try await recordErrors {
            let hold = UploadHold(id: id)
            let record = try await uploads.holdUpload(hold, until: Date().addingTimeInterval(holdLength))
            var writer = try MultipartWriter(
                client: client, budget: partsInFlight, state: try MultipartState(decoding: record.state))
            do {
                try await writer.resume(tail: keys.uploadTail(id))
                let hasher = try await writer.finish()
                do {
                    try Self.check(hasher, against: digest)
                } catch {
                    try await discard(writer.state, id, hold)
                    throw error
                }
                let state = writer.state
                try await client.completeMultipartUpload(state.key, uploadID: state.uploadID, parts: state.parts)
                if state.key != keys.blob(digest) {
                    try await client.copy(from: state.key, to: keys.blob(digest), size: writer.offset)
                    try await client.delete(state.key)
                }
                try await markStored(digest)
                try await client.delete(keys.uploadTail(id))
                try await uploads.deleteUpload(hold)
                return BlobInfo(digest: digest, size: writer.offset)
            } catch let error as RegistryError where error.code == .digestMismatch {
                throw error
            } catch {
                try? await uploads.releaseHold(hold)
                throw error
            }
        }
    }

    public func cancelUpload(_ id: UploadID) async throws(RegistryError) {
        try await recordErrors {
            let hold = UploadHold(id: id)
            let record = try await uploads.holdUpload(hold, until: Date().addingTimeInterval(holdLength))
            try await discard(try MultipartState(decoding: record.state), id, hold)
        }
    }

    /// Removes idle uploads older than the cutoff, and multipart uploads under the prefix that no upload
    /// record names and that began before it (a replica killed between starting one and recording it, or in
    /// the middle of a `put`).
    public func removeStaleUploads(untouchedSince cutoff: Date) async throws(RegistryError) -> [UploadID] {
        try await recordErrors {
            var removed: [UploadID] = []
            for record in try await uploads.idleUploads(updatedBefore: cutoff) {
                let hold = UploadHold(id: record.id)
                guard (try? await uploads.holdUpload(hold, until: Date().addingTimeInterval(holdLength))) != nil
                else { continue }
                try await discard(try MultipartState(decoding: record.state), record.id, hold)
                removed.append(record.id)
            }
            let recorded = Set(
                try await uploads.allUploads().compactMap { try? MultipartState(decoding: $0.state).uploadID })
            for upload in try await client.listMultipartUploads(prefix: keys.root)
            where upload.initiated < cutoff && !recorded.contains(upload.uploadID) {
                try await client.abortMultipartUpload(upload.key, uploadID: upload.uploadID)
            }
            return removed
        }
    }

    /// Aborts the multipart upload, removes the tail and the record: nothing of the upload is left.
    private func discard(_ state: MultipartState, _ id: UploadID, _ hold: UploadHold) async throws {
        try await client.abortMultipartUpload(state.key, uploadID: state.uploadID)
        try await client.delete(keys.uploadTail(id))
        try await uploads.deleteUpload(hold)
    }

    /// The record store's errors as the registry's (they are, from PostgreSQL; anything else is a failure).
    private func recordErrors<T>(_ body: () async throws -> T) async throws(RegistryError) -> T {
        do {
            return try await body()
        } catch let error as RegistryError {
            throw error
        } catch {
            throw RegistryError(.storageFailure, "upload records: \(error)")
        }
    }

    private static func check(_ hasher: ContentHasher, against digest: Digest) throws(RegistryError) {
        let actual = hasher.finalize()
        guard actual == digest else {
            throw RegistryError(.digestMismatch, "the bytes hash to \(actual), not \(digest): nothing was stored")
        }
    }
}

/// Where each thing of the store lives in the bucket, under the location's prefix.
struct S3BlobKeys: Sendable {
    let location: S3Location

    var root: String { location.key("") }
    var blobPrefix: String { location.key("blobs/sha256/") }
    var storedPrefix: String { location.key("stored/sha256/") }
    var quarantinePrefix: String { location.key("quarantine/sha256/") }
    var uploadPrefix: String { location.key("uploads/") }

    func blob(_ digest: Digest) -> String { blobPrefix + digest.hex }
    func storedPrefix(_ digest: Digest) -> String { storedPrefix + digest.hex + "/" }
    /// A store's marker: milliseconds since 1970, 15 digits, so that keys sort in time order.
    func stored(_ digest: Digest, at time: Date) -> String {
        let milliseconds = String(Int64((time.timeIntervalSince1970 * 1000).rounded(.down)))
        return storedPrefix(digest) + String(repeating: "0", count: max(0, 15 - milliseconds.count)) + milliseconds
    }

    /// The blob and time a marker's key names.
    func marker(_ key: String) -> (Digest, Date)? {
        guard key.hasPrefix(storedPrefix) else { return nil }
        let parts = key.dropFirst(storedPrefix.count).split(separator: "/")
        guard parts.count == 2, let digest = try? Digest(parsing: Digest.prefix + parts[0]),
            let milliseconds = Int64(parts[1])
        else { return nil }
        return (digest, Date(timeIntervalSince1970: Double(milliseconds) / 1000))
    }
    func quarantined(_ digest: Digest) -> String { quarantinePrefix + digest.hex }
    func uploadData(_ id: UploadID) -> String { uploadPrefix + id.value + "/data" }
    func uploadTail(_ id: UploadID) -> String { uploadPrefix + id.value + "/tail" }

    /// The digest a key under `prefix` names; nil for anything else found there.
    func digest(_ key: String, under prefix: String) -> Digest? {
        guard key.hasPrefix(prefix) else { return nil }
        return try? Digest(parsing: Digest.prefix + key.dropFirst(prefix.count))
    }
}

/// Where an upload's bytes went so far: its multipart upload, the parts done, the hash over their bytes, and
/// how many bytes wait in the tail object (fewer than a part).
struct MultipartState: Codable, Sendable {
    var key: String
    var uploadID: String
    var parts: [S3Part] = []
    var partBytes: Int64 = 0
    var hashState: [UInt8] = ContentHasher().savedState
    var tailBytes: Int64 = 0

    init(key: String, uploadID: String) {
        self.key = key
        self.uploadID = uploadID
    }

    init(decoding bytes: [UInt8]) throws(RegistryError) {
        do {
            self = try JSONDecoder().decode(Self.self, from: Data(bytes))
        } catch {
            throw RegistryError(.storageFailure, "an upload record's state is unreadable (\(error))")
        }
    }

    func encoded() throws(RegistryError) -> [UInt8] {
        do {
            return Array(try JSONEncoder().encode(self))
        } catch {
            throw RegistryError(.internalError, "cannot encode an upload's state (\(error))")
        }
    }
}

/// Bytes on their way into a multipart upload: each part goes up once full, several at once (up to
/// `bytesInFlight`), so that receiving, hashing and sending overlap. Parts are hashed in order as they are cut,
/// and `state` names only parts S3 confirmed, with the hash state at their end: what an upload record keeps is
/// always a prefix of the blob that S3 holds.
///
/// Each part is filled in a buffer of exactly its size, which goes to S3 as it is: a buffer left to grow
/// doubles past a part's size, and a part cut from it as a slice keeps all of it until S3 answers.
struct MultipartWriter {
    let client: S3Client
    /// This upload's share of the store's part budget.
    let holder: PartBudget.Holder
    var state: MultipartState
    /// The part being filled, and its share of the store's budget.
    private var buffer = ByteBuffer()
    private var reservation: PartBudget.Reservation?
    private var hasher: ContentHasher
    private var inFlight: [PartInFlight] = []

    private struct PartInFlight {
        let number: Int
        let length: Int
        /// The hash state at the part's end, saved with it once S3 confirms it.
        let hashState: [UInt8]
        let upload: Task<String, any Error>
        let reservation: PartBudget.Reservation?
    }

    /// At most this many bytes of parts are sent at once (at least one part): four 8 MiB parts, fewer while the
    /// store's other uploads hold its `PartBudget`.
    static let bytesInFlight = 32 << 20

    init(client: S3Client, budget: PartBudget, state: MultipartState) throws(RegistryError) {
        self.client = client
        self.holder = PartBudget.Holder(budget)
        self.state = state
        self.hasher = try ContentHasher(restoring: state.hashState)
    }

    /// Part `number` (from 1): 8 MiB for the first 2,000, doubling every 2,000 after, so that a 200 GiB blob
    /// fits in S3's 10,000 parts (it takes about 7,400, the largest 64 MiB) while an upload holds at most
    /// `bytesInFlight` of parts in memory, and a part's worth being received.
    static func partSize(_ number: Int) -> Int { (8 << 20) << ((number - 1) / 2000) }

    private var nextPart: Int { state.parts.count + inFlight.count + 1 }

    var offset: Int64 { state.partBytes + Int64(inFlight.reduce(0) { $0 + $1.length } + buffer.readableBytes) }

    /// Takes back the bytes the last request left past its last part.
    mutating func resume(tail key: String) async throws {
        guard state.tailBytes > 0 else { return }
        for try await chunk in try await client.get(key, range: 0..<state.tailBytes) {
            try await add(chunk)
        }
        guard buffer.readableBytes == state.tailBytes else {
            throw RegistryError(
                .integrity, "the tail of an upload holds \(buffer.readableBytes) bytes, not \(state.tailBytes)")
        }
    }

    mutating func add(_ chunk: ByteBuffer) async throws {
        var chunk = chunk
        while chunk.readableBytes > 0 {
            let size = Self.partSize(nextPart)
            if buffer.capacity < size {
                try await reserve(size)
                buffer = Self.allocator.buffer(capacity: size)
            }
            var piece = chunk.readSlice(length: min(chunk.readableBytes, size - buffer.readableBytes))!
            buffer.writeBuffer(&piece)
            if buffer.readableBytes == size { try await sendPart() }
        }
    }

    private static let allocator = ByteBufferAllocator()

    /// Takes a buffer's bytes from the store's budget, waiting for this upload's parts on their way while its
    /// share is spent.
    private mutating func reserve(_ bytes: Int) async throws {
        while !holder.take(bytes, anyway: inFlight.isEmpty) {
            try await confirmParts(leaving: inFlight.count - 1)
        }
        reservation = PartBudget.Reservation(holder, bytes: bytes)
    }

    /// Waits for the parts on their way; the error of one that failed, after which the upload goes on from the
    /// last part S3 confirmed.
    mutating func settle() async -> (any Error)? {
        do {
            try await confirmParts(leaving: 0)
            return nil
        } catch {
            return error
        }
    }

    /// Writes the bytes past the last part to the tail object, so the next request continues from them. Parts
    /// must be settled first.
    mutating func keepTail(_ key: String) async throws {
        precondition(inFlight.isEmpty, "the tail of an upload is kept only once its parts are settled")
        if buffer.readableBytes > 0 {
            try await client.put(key, buffer)
        } else if state.tailBytes > 0 {
            try await client.delete(key)
        }
        state.tailBytes = Int64(buffer.readableBytes)
    }

    /// Sends what is left as the last part (S3 needs one part at least), waits for every part, and returns the
    /// hash of everything.
    mutating func finish() async throws -> ContentHasher {
        if buffer.readableBytes > 0 || state.parts.count + inFlight.count == 0 {
            try await sendPart()
        }
        try await confirmParts(leaving: 0)
        return hasher
    }

    /// Stops the parts on their way, for an upload that is abandoned.
    mutating func cancel() async {
        for part in inFlight { part.upload.cancel() }
        for part in inFlight { _ = try? await part.upload.value }
        inFlight = []
    }

    /// Sends the buffer as the next part; the next bytes go to a new one.
    private mutating func sendPart() async throws {
        let length = buffer.readableBytes
        let part = buffer
        buffer = ByteBuffer()
        let reserved = reservation
        reservation = nil
        part.withUnsafeReadableBytes { hasher.update($0) }
        let (client, key, uploadID, number) = (client, state.key, state.uploadID, nextPart)
        inFlight.append(
            PartInFlight(
                number: number, length: length, hashState: hasher.savedState,
                upload: Task { try await client.uploadPart(key, uploadID: uploadID, partNumber: number, part) },
                reservation: reserved))
        try await confirmParts(leaving: max(0, Self.bytesInFlight / Self.partSize(nextPart) - 1))
    }

    /// Waits, oldest first, until at most `count` parts are on their way, recording each S3 confirmed. When one
    /// fails, the parts after it are stopped and the bytes from it on dropped (the tail too): the upload goes
    /// on from the end of the last confirmed part, which is what a client that resumes is told.
    private mutating func confirmParts(leaving count: Int) async throws {
        while inFlight.count > count {
            let part = inFlight.removeFirst()
            let etag: String
            do {
                etag = try await part.upload.value
            } catch {
                await cancel()
                buffer.clear()
                hasher = try ContentHasher(restoring: state.hashState)
                throw error
            }
            state.parts.append(S3Part(number: part.number, etag: etag))
            state.partBytes += Int64(part.length)
            state.hashState = part.hashState
        }
    }
}

/// The bytes of part buffers a store's uploads hold (being filled or on their way to S3), shared by them so that
/// many uploads at once hold a bounded memory. An upload may always hold one buffer, so that each goes on; more
/// only while the total stays within `limit` and the upload within an equal share of it among the uploads under
/// way. Bytes held past that share (one upload alone took more, then others began) are not taken again once
/// given back, so the total is at most `limit` plus a buffer for each other upload, and falls back to `limit`.
final class PartBudget: Sendable {
    let limit: Int
    private struct Use {
        var bytes = 0
        var most = 0
        var uploads = 0
        var held: [ObjectIdentifier: Int] = [:]
    }
    private let use = Mutex(Use())

    init(limit: Int) {
        self.limit = limit
    }

    /// One upload's claim on the budget, counted among the uploads under way for as long as it or one of its
    /// buffers lives.
    final class Holder: Sendable {
        let budget: PartBudget

        init(_ budget: PartBudget) {
            self.budget = budget
            budget.use.withLock { $0.uploads += 1 }
        }

        deinit { budget.use.withLock { $0.uploads -= 1 } }

        /// Takes `bytes` for this upload when it holds nothing, or when they fit in the budget and its share; or
        /// `anyway`, for an upload that has no part of its own to wait for.
        func take(_ bytes: Int, anyway: Bool) -> Bool {
            budget.use.withLock { use in
                let id = ObjectIdentifier(self)
                let held = use.held[id, default: 0]
                if held > 0, !anyway {
                    guard use.bytes + bytes <= budget.limit, held + bytes <= budget.limit / max(1, use.uploads) else {
                        return false
                    }
                }
                use.bytes += bytes
                use.held[id] = held + bytes
                use.most = max(use.most, use.bytes)
                return true
            }
        }

        fileprivate func release(_ bytes: Int) {
            budget.use.withLock { use in
                let id = ObjectIdentifier(self)
                use.bytes -= bytes
                let left = use.held[id, default: 0] - bytes
                use.held[id] = left > 0 ? left : nil
            }
        }
    }

    /// A buffer's bytes of the budget, given back when its last holder lets go of it (the part confirmed, or the
    /// upload's request ended whichever way).
    final class Reservation: Sendable {
        let holder: Holder
        let bytes: Int

        init(_ holder: Holder, bytes: Int) {
            self.holder = holder
            self.bytes = bytes
        }

        deinit { holder.release(bytes) }
    }

    var bytesInUse: Int { use.withLock { $0.bytes } }

    /// The most bytes held at once so far.
    var mostBytesInUse: Int { use.withLock { $0.most } }
}

/// A blob's bytes by ranged GETs, for the header parsers (on threads that may block).
private struct S3BlobReader: BlobReader {
    let client: S3Client
    let key: String
    let size: Int64

    func read(at offset: Int64, maxLength: Int) throws(RegistryError) -> ByteBuffer {
        let end = min(size, offset + Int64(maxLength))
        guard offset < end else { return ByteBuffer() }
        return try client.getBlocking(key, range: offset..<end)
    }
}

/// One ranged GET of a blob, handed out in chunks of at most `BlobBytes.chunkLimit`; a body that ends short
/// is an integrity error, not a shorter blob. The body's buffers are gathered into chunks of a `ReadWindow`, so
/// a download from the object store reads ahead of its client only as far as one from a data directory does.
private final class RangedBody {
    private let client: S3Client
    private let key: String
    private let digest: Digest
    private let range: Range<Int64>
    private var body: S3Body.AsyncIterator?
    private var pending = ByteBuffer()
    private var delivered: Int64 = 0
    private let window = ReadWindow()

    init(client: S3Client, key: String, digest: Digest, range: Range<Int64>) {
        self.client = client
        self.key = key
        self.digest = digest
        self.range = range
    }

    func next() async throws -> ByteBuffer? {
        let remaining = Int64(range.count) - delivered
        guard remaining > 0 else { return nil }
        await window.waitForRoom()
        let length = Int(min(Int64(window.chunkSize(limit: BlobBytes.chunkLimit)), remaining))
        var chunk = window.chunk(capacity: length)
        while chunk.readableBytes < length {
            if pending.readableBytes == 0 {
                if body == nil { body = try await client.get(key, range: range).makeAsyncIterator() }
                guard let next = try await body?.next() else {
                    throw RegistryError(
                        .integrity,
                        "blob \(digest) ended after \(delivered + Int64(chunk.readableBytes)) of the \(range.count) bytes asked for"
                    )
                }
                pending = next
            }
            var part =
                pending.readSlice(length: min(pending.readableBytes, length - chunk.readableBytes)) ?? ByteBuffer()
            chunk.writeBuffer(&part)
        }
        delivered += Int64(length)
        return chunk
    }
}
