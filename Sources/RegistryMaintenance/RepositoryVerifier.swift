import FileSystemBlobs
import FileSystemIO
import Foundation
import ModelRegistryCore

/// What `backup verify` found.
public struct RepositoryCheckReport: Codable, Sendable {
    public var repository: String
    public var readData: Bool
    public var snapshots: Int
    public var blobs: Int
    public var bytesRead: Int64
    public var problems: [String]
    public var seconds: Double

    public var healthy: Bool { problems.isEmpty }
}

/// Checks a repository: every snapshot file parses and every blob it names is there with its size; with
/// `readData`, every blob file is rehashed against its name.
public struct RepositoryVerifier: Sendable {
    public let repository: BackupRepository
    public let readData: Bool

    public init(repository: BackupRepository, readData: Bool) {
        self.repository = repository
        self.readData = readData
    }

    public func run() throws -> RepositoryCheckReport {
        let started = ContinuousClock.now
        let lock = try repository.lock(exclusive: false)
        defer { lock.unlock() }
        var problems: [String] = []
        var needed: [Digest: (size: Int64, snapshot: String)] = [:]
        var snapshots = 0
        for name in try POSIXFile.entries(repository.snapshots.path) where name.hasSuffix(".json") {
            let snapshot: Snapshot
            do {
                snapshot = try repository.readSnapshot(repository.snapshots.appendingPathComponent(name).path)
            } catch {
                problems.append(error.message)
                continue
            }
            snapshots += 1
            for blob in [snapshot.metadata.blob] + snapshot.blobs where needed[blob.digest] == nil {
                needed[blob.digest] = (blob.size, snapshot.id)
            }
        }
        for (digest, expected) in needed.sorted(by: { $0.key < $1.key }) {
            guard let status = try POSIXFile.status(repository.blob(digest)) else {
                problems.append("blob \(digest) of snapshot \(expected.snapshot) is missing")
                continue
            }
            if status.size != expected.size {
                problems.append(
                    "blob \(digest) of snapshot \(expected.snapshot) is \(status.size) bytes, not \(expected.size)")
            }
        }
        var bytesRead: Int64 = 0
        if readData {
            for file in try ContentAddressedTree.files(in: repository.blobs) {
                let actual = try FileTree.hash(file.path)
                bytesRead += actual.size
                if actual.digest != file.digest {
                    problems.append("blob \(file.digest) is corrupt: its bytes hash to \(actual.digest)")
                }
            }
        }
        return RepositoryCheckReport(
            repository: repository.root.path, readData: readData, snapshots: snapshots, blobs: needed.count,
            bytesRead: bytesRead, problems: problems, seconds: (ContinuousClock.now - started).seconds
        )
    }
}
