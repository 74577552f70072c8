import AsyncHTTPClient
import FileSystemIO
import Foundation
import ModelRegistryCore
import NIOCore
import NIOHTTP1
import RegistryAPI

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The admin maintenance routes: garbage collection, integrity scrub, and the database snapshot.
extension RegistryConnection {
    public func collectGarbage(dryRun: Bool, graceSeconds: Int64) async throws -> GarbageCollectionReport {
        try await maintenance(GarbageCollectionReport.self, "/v1/admin/gc?dry_run=\(dryRun)&grace=\(graceSeconds)s")
    }

    public func scrub(sample: Double) async throws -> ScrubReport {
        try await maintenance(ScrubReport.self, "/v1/admin/verify?sample=\(sample)")
    }

    /// A maintenance run can take as long as reading every blob: it gets the transfer timeout.
    private func maintenance<T: Decodable>(_ type: T.Type, _ path: String) async throws -> T {
        let response = try await execute(request(.POST, path), timeout: Self.transferTimeout)
        let bytes = try await response.body.collect(upTo: 256 << 20)
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes.readableBytesView))
        } catch {
            throw RegistryError(.internalError, "unexpected response from \(path): \(error)")
        }
    }

    /// Streams a consistent copy of the registry database into the new file `path`, checked against the
    /// digest the server sends, and synced.
    public func downloadDatabaseSnapshot(to path: String) async throws {
        let file = try POSIXFile.open(path, flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
        do {
            let response = try await execute(request(.GET, "/v1/admin/snapshot"), timeout: Self.transferTimeout)
            guard let claimed = response.headers.first(name: APIHeader.digest).flatMap({ try? Digest(parsing: $0) })
            else {
                throw RegistryError(.internalError, "the server's database snapshot came without its digest")
            }
            var hasher = ContentHasher()
            var offset: Int64 = 0
            for try await buffer in response.body {
                try buffer.withUnsafeReadableBytes { raw in
                    try file.write(raw, at: offset)
                    hasher.update(raw)
                }
                offset += Int64(buffer.readableBytes)
            }
            let actual = hasher.finalize()
            guard actual == claimed else {
                throw RegistryError(
                    .integrity,
                    "the database snapshot hashes to \(actual), not \(claimed) as the server says: run the backup again"
                )
            }
            try file.sync()
            try file.close()
        } catch {
            try? file.close()
            try? POSIXFile.remove(path)
            throw error
        }
    }

    /// Stores a blob from a local file in one request; the server checks the bytes against the digest.
    public func putBlob(_ digest: Digest, from path: String) async throws {
        let url = URL(fileURLWithPath: path)
        guard let size = try POSIXFile.regularFileSize(path) else {
            throw RegistryError(.notFound, "\(path) not found")
        }
        var put = request(.PUT, "/v1/blobs/\(digest)")
        put.headers.add(name: "Content-Type", value: "application/octet-stream")
        put.body = .stream(try FileChunks(url: url, from: 0), length: .known(size))
        _ = try await execute(put, timeout: Self.transferTimeout)
    }
}
