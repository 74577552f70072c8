import Foundation
import ModelRegistryCore
import RegistryClient
import RegistryMaintenance

/// A running registry, read through the admin API: the metadata through `GET /v1/admin/export` (one read
/// transaction of the server's store), the blobs through `GET /v1/blobs`, each verified as it arrives.
public struct RemoteBackupSource: BackupSource {
    public let connection: RegistryConnection

    public init(connection: RegistryConnection) {
        self.connection = connection
    }

    public var description: String { connection.configuration.server }

    public func exportMetadata() async throws -> MetadataExport {
        try await connection.exportMetadata()
    }

    public func copyBlob(_ blob: BlobEntry, to path: String) async throws -> BlobEntry {
        do {
            _ = try await connection.downloadBlob(
                blob.digest, size: blob.size, partial: URL(fileURLWithPath: path + ".partial"),
                to: URL(fileURLWithPath: path),
                executable: false, label: "blob \(blob.digest)",
                progress: TransferProgress(style: .none, verb: "copying") { _ in }
            )
        } catch let error as RegistryError where error.code == .notFound {
            throw RegistryError(
                .notFound,
                "blob \(blob.digest) of the snapshot is no longer on the server (quarantined by verify, or collected after a delete): "
                    + "run `modelreg verify` and `modelreg repair`, or back up again"
            )
        }
        return blob
    }
}

/// A running registry, refilled through the API: the missing blobs from `POST /v1/admin/verify?sample=0`,
/// each stored with `PUT /v1/blobs/{digest}`, which checks the bytes.
public struct RemoteRepairTarget: RepairTarget {
    public let connection: RegistryConnection

    public init(connection: RegistryConnection) {
        self.connection = connection
    }

    public var description: String { connection.configuration.server }

    public func missingBlobs() async throws -> [Digest] {
        try await connection.scrub(sample: 0).missing
    }

    public func store(_ digest: Digest, from path: String) async throws {
        try await connection.putBlob(digest, from: path)
    }
}
