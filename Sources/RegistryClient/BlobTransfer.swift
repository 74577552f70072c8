import AsyncHTTPClient
import Foundation
import ModelRegistryCore
import NIOCore
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension RegistryConnection {
    /// The stored size of a blob, or nil when the server does not have it.
    public func blobSize(_ digest: Digest) async throws -> Int64? {
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request(.HEAD, "/v1/blobs/\(digest)"), timeout: Self.metadataTimeout)
        } catch {
            throw ClientError.network("HEAD /v1/blobs/\(digest) failed: \(error)")
        }
        switch response.status.code {
        case 200: return response.headers.first(name: "Content-Length").flatMap { Int64($0) }
        case 404: return nil
        default: throw try await Self.error(from: response, request: request(.HEAD, "/v1/blobs/\(digest)"))
        }
    }

    /// Uploads a file as one blob through a resumable upload. A dropped connection is resumed from the
    /// offset the server reports; bytes it already has are not sent again.
    public func uploadBlob(_ file: LocalFile, digest: Digest, attempts: Int = 3) async throws -> UploadedBytes {
        let created = try await json(UploadStatus.self, .POST, "/v1/uploads")
        let location = "/v1/uploads/\(created.id)"
        var sent: Int64 = 0
        var offset: Int64 = 0
        for attempt in 1...attempts {
            do {
                if offset < file.size {
                    var patch = request(.PATCH, location)
                    patch.headers.add(name: APIHeader.uploadOffset, value: String(offset))
                    patch.headers.add(name: "Content-Type", value: "application/octet-stream")
                    patch.body = .stream(try FileChunks(url: file.url, from: offset), length: .known(file.size - offset))
                    _ = try await execute(patch, timeout: Self.transferTimeout)
                    sent += file.size - offset
                }
                _ = try await execute(request(.PUT, "\(location)?digest=\(digest)"))
                return UploadedBytes(sent: sent, resumedFrom: sent == file.size ? 0 : file.size - sent)
            } catch is ClientError where attempt < attempts {
                offset = try await json(UploadStatus.self, .GET, location).offset
            } catch let error as RegistryError where error.code == .digestMismatch {
                throw RegistryError(.digestMismatch, "\(file.path) changed while it was being pushed (\(error.message)): push again")
            }
        }
        throw ClientError.network("upload of \(file.path) did not complete after \(attempts) attempts")
    }

    /// Streams a blob into `destination`, hashing as it writes. The file is complete and verified when this
    /// returns; on any failure it is removed.
    public func downloadBlob(_ digest: Digest, size: Int64, to destination: URL, executable: Bool) async throws {
        let file = try POSIXFile.open(destination.path, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: executable ? 0o755 : 0o644)
        do {
            let response = try await execute(request(.GET, "/v1/blobs/\(digest)"), timeout: Self.transferTimeout)
            var hasher = ContentHasher()
            var offset: Int64 = 0
            for try await buffer in response.body {
                guard offset + Int64(buffer.readableBytes) <= size else {
                    throw RegistryError(.integrity, "blob \(digest) is longer than the \(size) bytes its manifest says")
                }
                try buffer.withUnsafeReadableBytes { raw in
                    try file.write(raw, at: offset)
                    hasher.update(raw)
                }
                offset += Int64(buffer.readableBytes)
            }
            guard offset == size else {
                throw RegistryError(.integrity, "blob \(digest) ended after \(offset) of \(size) bytes")
            }
            let actual = hasher.finalize()
            guard actual == digest else {
                throw RegistryError(.integrity, "downloaded bytes hash to \(actual), not \(digest): the registry's copy may be corrupt; nothing was written")
            }
            try file.sync()
            try file.close()
        } catch {
            try? file.close()
            try? POSIXFile.remove(destination.path)
            throw error
        }
    }
}

public struct UploadedBytes: Sendable {
    public var sent: Int64
    public var resumedFrom: Int64
}
