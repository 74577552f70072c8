import ArgumentParser
import FileSystemBlobs
import Foundation
import ModelRegistryCore
import RegistryClient
import RegistryMaintenance
import RegistryServer

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy a data directory's registry into PostgreSQL (and S3), verified and resumable.",
        discussion: """
            Every blob goes through the target's digest check, then the metadata is imported in one transaction \
            into an empty database. Stopped anywhere, it is finished by running it again; a run after a finished \
            one copies nothing. Without --blobs the blobs stay in the directory (serve it with --data and \
            --metadata). Stop the server on the directory first.
            """
    )

    @Option(help: "Data directory of the registry to copy.")
    var from: String

    @OptionGroup var storage: StorageOptions

    @OptionGroup var output: OutputOptions

    func run() async throws {
        let directory = DataDirectory(from)
        guard FileManager.default.fileExists(atPath: directory.database.path) else {
            throw RegistryError(.notFound, "\(from) holds no registry (no \(directory.database.lastPathComponent))")
        }
        let metadataLocation = try storage.metadataLocation()
        guard metadataLocation != .dataDirectory else {
            throw ValidationError("give --metadata postgres://… to migrate to")
        }
        let lock = try directory.claim(doing: "migrating it", instead: "migrate a copy of it")
        defer { lock.unlock() }
        let source = try LocalStores(directory)
        let metadata = try await RegistryStores.metadata(metadataLocation, directory: directory)
        let blobs = try RegistryStores.blobs(try storage.blobLocation(), directory: directory, metadata: metadata)
        let report = try await StoreCopier(
            sourceBlobs: source.blobs, sourceMetadata: source.metadata, targetBlobs: blobs, targetMetadata: metadata
        ).run(log: output.progress)
        output.print(report) {
            guard report.blobsCopied > 0 || report.metadataImported else {
                return
                    "nothing to copy: the target holds this registry (\(report.models) models, \(report.blobs) blobs)"
            }
            return "copied \(report.blobsCopied) of \(report.blobs) blobs (\(ByteCount.format(report.bytesCopied)))"
                + (report.metadataImported ? "; imported \(report.models) models" : "")
        }
    }
}
