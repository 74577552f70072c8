import AsyncHTTPClient
import FileSystemIO
import Foundation
import ModelRegistryCore
import NIOCore
import NIOHTTP1
import RegistryAPI
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension RegistryConnection {
    /// How many times a transfer is tried before a network failure is reported; each try continues where
    /// the last one stopped.
    static let transferAttempts = 3

    /// The stored size of a blob, or nil when the server does not have it.
    public func blobSize(_ digest: Digest) async throws -> Int64? {
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request(.HEAD, "/v1/blobs/\(digest)"), timeout: Self.metadataTimeout)
        } catch {
            throw ClientError.transport("HEAD /v1/blobs/\(digest) failed", error)
        }
        switch response.status.code {
        case 200: return response.headers.first(name: "Content-Length").flatMap { Int64($0) }
        case 404: return nil
        default: throw try await Self.error(from: response, request: request(.HEAD, "/v1/blobs/\(digest)"))
        }
    }

    /// Uploads a file as one blob through a resumable upload; the server hashes every byte and stores the blob
    /// only under the digest its own hash ends with. A file whose digest is not known yet is hashed as its
    /// bytes are sent, so reading, hashing and sending overlap.
    ///
    /// With the digest known (`expecting`), the upload is started for it, so an earlier upload of it that was
    /// cut off (a killed client, a dropped connection) is continued from the offset the server reached, and
    /// another push of the same blob may finish it instead. Without, a digest-less upload is started and
    /// recorded in `journal`, so a killed push continues it in the next run, hashing again from the file the
    /// bytes the server holds. Either way, those bytes are never sent again. A server whose digest-less uploads
    /// cost a second pass at their commit (blobs in an object store, which copies them to the digest's key)
    /// says so when one is started: the file is hashed first instead, and so are the connection's later files.
    func upload(_ file: LocalFile, expecting digest: Digest?, journal: UploadJournal?, progress: TransferProgress)
        async throws -> HashedUpload
    {
        var upload: UploadStatus
        if let digest {
            // Starting (or finding) the digest's upload twice is harmless: the server answers with the same one.
            upload = try await json(UploadStatus.self, .POST, "/v1/uploads?digest=\(digest)", idempotent: true)
        } else if let id = journal?.upload(of: file) {
            do {
                upload = try await json(UploadStatus.self, .GET, "/v1/uploads/\(id)")
            } catch let error as RegistryError where error.code == .notFound {
                // Finished before the kill reached the push that started it, or swept: the digest tells.
                try journal?.remove(file)
                return try await uploadHashed(file, progress: progress)
            }
        } else if hashesBeforeUpload.isSet {
            return try await uploadHashed(file, progress: progress)
        } else {
            upload = try await json(UploadStatus.self, .POST, "/v1/uploads")
            if upload.digestFirst == true {
                hashesBeforeUpload.set()
                _ = try? await execute(request(.DELETE, "/v1/uploads/\(upload.id)"))
                return try await uploadHashed(file, progress: progress)
            }
            try journal?.record(upload.id, of: file)
        }
        var resumed = upload.offset
        var offset = upload.offset
        let sent = Counter()
        let token = progress.startFile(file.path.value, size: file.size, at: offset)
        var attempt = 1
        var cutOff = false
        var waits = 0
        while true {
            let location = "/v1/uploads/\(upload.id)"
            do {
                // A known digest is the server's to check; only an unknown one is hashed here.
                let hasher = digest == nil ? try SharedHasher(prefixOf: file.url, count: offset) : nil
                try await send(
                    file, from: offset, to: location, hashingInto: hasher, sent: sent, progress: progress, token: token)
                let hashed = try digest ?? hasher!.digest(ofSize: file.size)
                _ = try await execute(request(.PUT, "\(location)?digest=\(hashed)"))
                try journal?.remove(file)
                progress.finishFile(token, message: "uploaded \(file.path) (\(ByteCount.format(file.size)))")
                return HashedUpload(
                    digest: hashed, bytes: UploadedBytes(sent: sent.value, resumed: resumed), stored: false)
            } catch let error as RegistryError {
                switch error.code {
                case .digestMismatch:
                    try? journal?.remove(file)
                    throw RegistryError(
                        .digestMismatch, "\(file.path) changed while it was being pushed (\(error.message)): push again"
                    )
                case .uploadBusy, .uploadOffsetMismatch:
                    if cutOff, waits < Self.busyWaits {
                        // The server has not yet seen the end of the connection that was cut, and still
                        // holds the upload: wait for it to let go, then continue from where it got to.
                        waits += 1
                        try await Task.sleep(for: .milliseconds(100))
                        offset = try await json(UploadStatus.self, .GET, location).offset
                    } else if try await handOver() {
                        return finishedByAnother()
                    }
                case .notFound:
                    if try await handOver() { return finishedByAnother() }
                default:
                    throw error
                }
            } catch is ClientError {
                guard attempt < Self.transferAttempts else {
                    throw ClientError.network("upload of \(file.path) was cut off \(attempt) times")
                }
                attempt += 1
                cutOff = true
                offset = try await json(UploadStatus.self, .GET, location).offset
            }
            progress.rewind(token, to: offset)
        }

        /// Another push of the same file took this upload over (or finished it). True when the blob is
        /// stored now; otherwise the rest goes through an upload of this push's own.
        func handOver() async throws -> Bool {
            guard attempt < Self.transferAttempts else {
                throw RegistryError(
                    .uploadBusy, "the upload of \(file.path) kept meeting another push of the same file: push again")
            }
            attempt += 1
            if let digest, try await blobSize(digest) == file.size { return true }
            upload = try await json(UploadStatus.self, .POST, "/v1/uploads")
            if digest == nil { try journal?.record(upload.id, of: file) }
            (offset, resumed, cutOff) = (0, 0, false)
            return false
        }

        func finishedByAnother() -> HashedUpload {
            progress.finishFile(
                token, message: "uploaded \(file.path) (\(ByteCount.format(file.size)), by another push)")
            return HashedUpload(digest: digest!, bytes: UploadedBytes(sent: sent.value, resumed: 0), stored: false)
        }
    }

    /// Hashes the file first, then sends it as the digest's upload unless the server has the blob already.
    private func uploadHashed(_ file: LocalFile, progress: TransferProgress) async throws -> HashedUpload {
        // Shown while it lasts (a large file takes a while), then taken back: the push counts bytes sent.
        let token = progress.startFile("\(file.path) (hashing)", size: file.size)
        let digest = try LocalFiles.digest(of: file.url) { progress.advance(token, by: Int64($0)) }
        progress.dropFile(token)
        if try await blobSize(digest) == file.size {
            progress.skip(size: file.size)
            return HashedUpload(digest: digest, bytes: UploadedBytes(sent: 0, resumed: 0), stored: true)
        }
        return try await upload(file, expecting: digest, journal: nil, progress: progress)
    }

    /// PATCHes the file's bytes from `offset` on to the upload at `location`, feeding `hasher` when given.
    private func send(
        _ file: LocalFile, from offset: Int64, to location: String, hashingInto hasher: SharedHasher? = nil,
        sent: Counter, progress: TransferProgress, token: Int
    ) async throws {
        guard offset < file.size else { return }
        var patch = request(.PATCH, location)
        patch.headers.add(name: APIHeader.uploadOffset, value: String(offset))
        patch.headers.add(name: "Content-Type", value: "application/octet-stream")
        let chunks = try FileChunks(url: file.url, from: offset, hashingInto: hasher) { count in
            sent.add(count)
            progress.advance(token, by: Int64(count))
        }
        patch.body = .stream(chunks, length: .known(file.size - offset))
        _ = try await execute(patch, timeout: Self.transferTimeout)
    }

    /// How many times (100 ms apart) a client whose connection was cut waits for the server to release the upload.
    static let busyWaits = 50

    /// Downloads a blob into `partial`, continuing from the bytes it already holds (a killed pull, a
    /// dropped connection) with a `Range` request, hashing every byte as it is written. Only when the whole
    /// file hashes to `digest` is it renamed to `destination`; bytes that do not match are deleted.
    public func downloadBlob(
        _ digest: Digest, size: Int64, partial: URL, to destination: URL, executable: Bool, label: String,
        progress: TransferProgress
    ) async throws -> DownloadedBytes {
        let file = try POSIXFile.open(partial.path, flags: O_RDWR | O_CREAT, mode: 0o600)
        defer { try? file.close() }
        if try file.size() > size { try file.truncate(to: 0) }
        // The bytes already there are hashed again rather than trusted: the hash must cover every byte.
        let (hasher, offset) = try file.hashContents(chunkSize: FileChunks.chunkSize)
        let position = DownloadPosition(hasher: hasher, offset: offset)
        let token = progress.startFile(label, size: size, at: offset)
        let body = BlobBody(
            digest: digest, size: size, file: file, position: position, label: label, progress: progress, token: token)
        for attempt in 1...Self.transferAttempts {
            do {
                if position.offset < size {
                    var get = request(.GET, "/v1/blobs/\(digest)")
                    if position.offset > 0 { get.headers.add(name: "Range", value: "bytes=\(position.offset)-") }
                    if try await !receivePlain(get, into: body) {
                        try await receive(get, into: body)
                    }
                    guard position.offset == size else {
                        throw ClientError.network(
                            "download of \(label) ended after \(position.offset) of \(size) bytes")
                    }
                }
                let actual = position.hasher.finalize()
                guard actual == digest else {
                    try? POSIXFile.remove(partial.path)
                    throw RegistryError(
                        .integrity,
                        "\(label): downloaded bytes hash to \(actual), not \(digest): the registry's copy may be corrupt; nothing was written"
                    )
                }
                guard fchmod(file.descriptor, executable ? 0o755 : 0o644) == 0 else {
                    throw RegistryError(
                        .storageFailure, "cannot set the mode of \(partial.path): \(String(cString: strerror(errno)))")
                }
                try file.sync()
                try POSIXFile.rename(partial.path, to: destination.path)
                progress.finishFile(token, message: "downloaded \(label) (\(ByteCount.format(size)))")
                return DownloadedBytes(received: position.received, resumed: offset)
            } catch let error as ClientError {
                guard attempt < Self.transferAttempts else { throw error }
            }
        }
        throw ClientError.network("download of \(label) did not complete after \(Self.transferAttempts) attempts")
    }

    /// Receives the rest of a blob through AsyncHTTPClient: the answer the plain path leaves to it, and every
    /// answer over TLS.
    private func receive(_ get: HTTPClientRequest, into body: BlobBody) async throws {
        let response = try await download(get)
        try body.start(
            partial: response.status == .partialContent,
            from: ContentRange.start(of: response.headers.first(name: "Content-Range")))
        let writer = WriteBehindFile(body.file, from: body.position.offset)
        do {
            for try await buffer in response.body {
                try body.take(buffer)
                try await writer.write(buffer)
            }
        } catch {
            try await writer.finish()
            throw body.failure(error)
        }
        try await writer.finish()
    }

    /// Receives the rest of a blob over a plain-HTTP connection of its own (`PlainHTTPDownload`), a chunk at a
    /// time, hashed on the reading thread and written behind it. False, with nothing received, when the
    /// registry is not plain HTTP or answered something for AsyncHTTPClient to read.
    private func receivePlain(_ get: HTTPClientRequest, into body: BlobBody) async throws -> Bool {
        guard let (connection, answer) = try await plainDownload(get) else { return false }
        try body.start(partial: answer.status == 206, from: answer.rangeStart)
        guard answer.length <= body.size - body.position.offset else { throw body.tooLong() }
        let writer = WriteBehindFile(body.file, from: body.position.offset)
        do {
            try await connection.blocking {
                while let buffer = try connection.nextChunk() {
                    try body.take(buffer)
                    try writer.writeWaiting(buffer)
                }
            }
        } catch {
            try await writer.finish()
            throw body.failure(error)
        }
        try await writer.finish()
        return true
    }

    /// A plain-HTTP connection (`PlainHTTPDownload`) on which `request`'s answer is a body of known length;
    /// nil over TLS, or when the answer is one for AsyncHTTPClient to read (an error, a redirect to an object
    /// store): the caller then asks through `download`.
    func plainDownload(_ request: HTTPClientRequest) async throws -> (PlainHTTPDownload, PlainHTTPDownload.Body)? {
        // A header AsyncHTTPClient would refuse (a line break in a token) is left to it to refuse.
        guard configuration.caCertificate == nil, let url = URL(string: request.url), url.scheme == "http",
            !request.headers.contains(where: { ($0.name + $0.value).contains(where: \.isNewline) })
        else { return nil }
        let stallLimit = Int(Self.stallLimit.nanoseconds / 1_000_000_000)
        let connection = try await runOnThread {
            try PlainHTTPDownload(url, headers: request.headers, stallLimit: stallLimit)
        }
        let answer = try await connection.blocking { try connection.answer() }
        return answer.map { (connection, $0) }
    }
}

/// How far a blob's download got: the hash of its bytes up to `offset`, every one of them on its way to the
/// file. Changed by one thread at a time: the download's task, or the thread it waits for.
final class DownloadPosition: @unchecked Sendable {
    var hasher: ContentHasher
    var offset: Int64
    var received: Int64 = 0

    init(hasher: ContentHasher, offset: Int64) {
        self.hasher = hasher
        self.offset = offset
    }
}

/// One blob's download: where its bytes go and what each received buffer must pass, whichever path reads them.
struct BlobBody: Sendable {
    let digest: Digest
    let size: Int64
    let file: POSIXFile
    let position: DownloadPosition
    let label: String
    let progress: TransferProgress
    let token: Int

    /// Called once the answer's status is known: an answer to a `Range` that is not partial brought the whole
    /// blob back, so the file starts over. A partial one must start (`rangeStart`, its `Content-Range`) where
    /// the file's bytes end; one that does not is refused as a dropped connection is, and the file starts over
    /// too, so the retry asks for the whole blob rather than the same range again.
    func start(partial: Bool, from rangeStart: Int64?) throws {
        if partial, rangeStart != position.offset {
            let asked = position.offset
            try restart()
            throw ClientError.network(
                "download of \(label): asked for the bytes from \(asked), the registry sent them from \(rangeStart.map(String.init) ?? "an unnamed place")"
            )
        }
        guard position.offset > 0, !partial else { return }
        try restart()
    }

    private func restart() throws {
        try file.truncate(to: 0)
        (position.hasher, position.offset) = (ContentHasher(), 0)
        progress.rewind(token, to: 0)
    }

    /// Hashes and counts a buffer of the body, refusing bytes past the blob's size. The caller writes it next;
    /// a write that fails is a storage error, never retried, so a retry never starts past bytes not written.
    func take(_ buffer: ByteBuffer) throws {
        guard position.offset + Int64(buffer.readableBytes) <= size else { throw tooLong() }
        buffer.withUnsafeReadableBytes { position.hasher.update($0) }
        position.offset += Int64(buffer.readableBytes)
        position.received += Int64(buffer.readableBytes)
        progress.advance(token, by: Int64(buffer.readableBytes))
    }

    func tooLong() -> RegistryError {
        RegistryError(.integrity, "blob \(digest) is longer than the \(size) bytes its manifest says")
    }

    /// The error a download that stopped with `error` throws: a registry's refusal as it is, anything else as a
    /// cut-off connection, which the caller retries from the bytes hashed so far (all of them in the file).
    func failure(_ error: any Error) -> any Error {
        if error is RegistryError || error is CancellationError { return error }
        let reason =
            if case ClientError.network(let message) = error { message } else { String(describing: error) }
        return ClientError.network(
            "download of \(label) was cut off after \(position.offset) of \(size) bytes: \(reason)")
    }
}

/// What an upload of a file hashed as it was sent found its digest to be, and what it sent.
struct HashedUpload: Sendable {
    var digest: Digest
    var bytes: UploadedBytes
    /// The blob was stored already (a killed push had finished its upload): nothing was sent.
    var stored: Bool
}

public struct UploadedBytes: Sendable {
    /// Bytes put on the wire, including any that a dropped connection lost.
    public var sent: Int64
    /// Bytes an earlier, interrupted upload had already delivered.
    public var resumed: Int64
}

public struct DownloadedBytes: Sendable {
    public var received: Int64
    /// Bytes already on disk from an earlier, interrupted pull.
    public var resumed: Int64
}

/// A byte count shared with the closures that stream a request body.
final class Counter: Sendable {
    private let count = Atomic<Int64>(0)

    func add(_ value: Int) { count.add(Int64(value), ordering: .relaxed) }
    var value: Int64 { count.load(ordering: .relaxed) }
}
