import AsyncHTTPClient
import FileSystemIO
import Foundation
import ModelRegistryCore
import NIOCore
import NIOHTTP1
import RegistryAPI

/// The admin maintenance routes: garbage collection, integrity scrub, and the metadata export.
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

    /// Everything the registry's metadata holds as of one moment, checked against the digest the server sends.
    public func exportMetadata() async throws -> MetadataExport {
        let response = try await execute(request(.GET, "/v1/admin/export"), timeout: Self.transferTimeout)
        guard let claimed = response.headers.first(name: APIHeader.digest).flatMap({ try? Digest(parsing: $0) })
        else {
            throw RegistryError(.internalError, "the server's metadata export came without its digest")
        }
        let bytes = Array(try await response.body.collect(upTo: Int(Int32.max)).readableBytesView)
        let actual = Digest.of(bytes)
        guard actual == claimed else {
            throw RegistryError(
                .integrity,
                "the metadata export hashes to \(actual), not \(claimed) as the server says: run the backup again")
        }
        return try MetadataExport.decode(bytes, from: "the metadata export of \(configuration.server)")
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
