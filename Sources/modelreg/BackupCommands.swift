import ArgumentParser
import FileSystemBlobs
import Foundation
import MaintenanceClient
import ModelRegistryCore
import RegistryClient
import RegistryMaintenance
import RegistryServer

/// The repository option every `backup` subcommand shares.
struct RepositoryOptions: ParsableArguments {
    @Option(name: [.customLong("to"), .customLong("repo")], help: "Backup repository directory.")
    var repository: String
}

struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Back up a registry into a content-addressed repository; list, verify and prune its snapshots.",
        subcommands: [Create.self, ListSnapshots.self, VerifyRepository.self, Prune.self],
        defaultSubcommand: Create.self
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Take a snapshot (the default: `modelreg backup --to REPO`).",
            discussion:
                "With --data, reads the data directory; otherwise the server (admin token). Only blobs the repository lacks are copied."
        )

        @OptionGroup var repository: RepositoryOptions

        @Option(help: "Blobs copied at once.")
        var jobs = 4

        @OptionGroup var target: RegistryTargetOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let repository = try BackupRepository.openOrCreate(self.repository.repository)
            let source: any BackupSource =
                try target.directory.map { try StoreBackupSource(directory: $0) }
                ?? RemoteBackupSource(connection: target.client.connection)
            let runner = BackupRunner(
                repository: repository, source: source, modelregVersion: Modelreg.configuration.version, jobs: jobs)
            let report = try await runner.run(log: output.progress)
            output.print(report) { Presentation.backup(report) }
        }
    }

    struct ListSnapshots: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ls", abstract: "List the snapshots of a repository.")

        @OptionGroup var repository: RepositoryOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let snapshots = try BackupRepository(opening: repository.repository).allSnapshots()
            output.print(SnapshotList(snapshots: snapshots)) { Presentation.snapshots(snapshots) }
        }
    }

    struct VerifyRepository: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify",
            abstract: "Check that every snapshot's blobs are there; with --read-data, rehash every byte."
        )

        @OptionGroup var repository: RepositoryOptions

        @Flag(help: "Rehash every blob of the repository.")
        var readData = false

        @OptionGroup var output: OutputOptions

        func run() async throws {
            let report = try RepositoryVerifier(
                repository: try BackupRepository(opening: repository.repository), readData: readData
            ).run()
            output.print(report) { Presentation.repositoryCheck(report) }
            guard report.healthy else {
                throw RegistryError(.integrity, "the repository has \(report.problems.count) problem(s)")
            }
        }
    }

    struct Prune: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove the snapshots a retention policy does not keep, and the blobs only they needed."
        )

        @OptionGroup var repository: RepositoryOptions

        @Option(help: "Keep the newest N snapshots.") var keepLast = 0
        @Option(help: "Keep the newest snapshot of each of the last N days that have one (UTC).") var keepDaily = 0
        @Option(help: "Keep the newest snapshot of each of the last N ISO weeks that have one.") var keepWeekly = 0
        @Flag(help: "Report what would be removed; remove nothing.") var dryRun = false

        @OptionGroup var output: OutputOptions

        func run() async throws {
            let policy = try RetentionPolicy(keepLast: keepLast, keepDaily: keepDaily, keepWeekly: keepWeekly)
            let report = try Pruner(repository: try BackupRepository(opening: repository.repository), policy: policy)
                .run(dryRun: dryRun)
            output.print(report) { Presentation.prune(report) }
        }
    }
}

struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Restore a snapshot into a data directory, or PostgreSQL and S3, verifying every blob.",
        discussion: """
            The directory must be empty, or be a registry data directory and --force given. Stop the server on it \
            first. With --metadata (and --blobs), the snapshot goes into that database (which must hold no \
            registry) and bucket instead.
            """
    )

    @Option(help: "Backup repository.")
    var from: String

    @Option(help: "Snapshot id, or a unique prefix of one (default: the newest).")
    var snapshot: String?

    @Option(help: "Data directory to restore into (with --metadata and no --blobs: where the blobs go).")
    var data: String?

    @Flag(help: "Replace the registry in a non-empty data directory.")
    var force = false

    @OptionGroup var storage: StorageOptions

    @OptionGroup var output: OutputOptions

    func run() async throws {
        let target: Restorer.Target
        switch (try storage.metadataLocation(), try storage.blobLocation(), data) {
        case (.dataDirectory, .dataDirectory, let data?):
            target = .dataDirectory(DataDirectory(data), force: force)
        case (.dataDirectory, _, _):
            throw ValidationError("give --data DIR, or --metadata postgres://… to restore into")
        case (let metadataLocation, let blobLocation, let data):
            guard !force else {
                throw ValidationError("--force replaces a data directory's registry, not a database's")
            }
            guard blobLocation != .dataDirectory || data != nil else {
                throw ValidationError("give --blobs s3://…, or --data DIR for the blobs")
            }
            let directory = DataDirectory(data ?? ServerConfiguration.defaultDataDirectory)
            if blobLocation == .dataDirectory { try directory.create() }
            let metadata = try await RegistryStores.metadata(metadataLocation, directory: directory)
            let blobs = try RegistryStores.blobs(blobLocation, directory: directory, metadata: metadata)
            target = .stores(
                blobs: blobs, metadata: metadata,
                name: ServerConfiguration(dataDirectory: directory, metadata: metadataLocation, blobs: blobLocation)
                    .storageDescription)
        }
        let restorer = Restorer(repository: try BackupRepository(opening: from), snapshotID: snapshot, target: target)
        let report = try await restorer.run(log: output.progress)
        output.print(report) { Presentation.restore(report) }
    }
}
