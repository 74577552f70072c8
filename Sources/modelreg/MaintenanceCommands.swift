import ArgumentParser
import FileSystemBlobs
import FileSystemIO
import Foundation
import MaintenanceClient
import ModelRegistryCore
import RegistryAPI
import RegistryClient
import RegistryMaintenance

/// Which registry a maintenance command works on: a data directory directly (`--data`), else a server
/// through the admin API.
struct RegistryTargetOptions: ParsableArguments {
    @Option(help: "Work on this data directory directly (no server may be running on it), instead of through a server.")
    var data: String?

    @OptionGroup var client: ClientOptions

    var directory: DataDirectory? { data.map { DataDirectory($0) } }

    /// The data directory, taken for the life of the command as `serve` takes it: a server's state (uploads
    /// under way, the blobs it is serving) is its own, so a command that writes into the directory refuses
    /// to run beside one and points at the server's own API instead. A directory that does not exist is
    /// not created here: the command's own error says it holds no registry.
    func claimedDirectory(_ command: String) throws -> (directory: DataDirectory, lock: FileLock?)? {
        guard let directory else { return nil }
        guard FileManager.default.fileExists(atPath: directory.root.path) else { return (directory, nil) }
        let lock = try directory.claim(
            doing: "running `modelreg \(command) --data`",
            instead: "run `modelreg \(command)` through it (without --data, with an admin token)"
        )
        return (directory, lock)
    }

    func validate() throws {
        if data != nil, client.server != nil || client.token != nil {
            throw ValidationError("--data works on the directory itself: drop --server and --token")
        }
    }
}

struct GC: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Delete blobs no manifest references (needs an admin token, or --data).",
        discussion:
            "Blobs younger than the grace period are kept: they may belong to a push that has not published yet."
    )

    @Flag(help: "Report what would be deleted; delete nothing.")
    var dryRun = false

    @Option(help: "Keep unreferenced blobs younger than this (90s, 30m, 2h, 7d).")
    var grace = "1h"

    @OptionGroup var target: RegistryTargetOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let seconds = try DurationText.seconds(grace)
        let report: GarbageCollectionReport
        // A dry run only reads, so it may look at a directory a server is running on.
        if dryRun, let directory = target.directory {
            let stores = try LocalStores(directory, readingOnly: true)
            report = try await GarbageCollector(blobs: stores.blobs, metadata: stores.metadata, graceSeconds: seconds)
                .run(dryRun: true)
        } else if let local = try target.claimedDirectory("gc") {
            defer { local.lock?.unlock() }
            let stores = try LocalStores(local.directory)
            try stores.blobs.restoreInterruptedDeletions()
            report = try await GarbageCollector(blobs: stores.blobs, metadata: stores.metadata, graceSeconds: seconds)
                .run(dryRun: false)
        } else {
            report = try await target.client.connection.collectGarbage(dryRun: dryRun, graceSeconds: seconds)
        }
        output.print(report) { Presentation.garbageCollection(report) }
    }
}

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rehash stored blobs; quarantine corrupt ones (needs an admin token, or --data).",
        discussion:
            "Exits 5 when a blob is corrupt or a referenced blob is missing: `modelreg repair --from REPO` restores them."
    )

    @Option(
        help: "Fraction of the blobs to rehash, chosen at random (1 = all, 0 = only check that referenced blobs exist)."
    )
    var sample = 1.0

    @OptionGroup var target: RegistryTargetOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let report: ScrubReport
        if let local = try target.claimedDirectory("verify") {
            defer { local.lock?.unlock() }
            let stores = try LocalStores(local.directory)
            report = try await Scrubber(blobs: stores.blobs, references: stores.metadata, sample: sample).run()
        } else {
            report = try await target.client.connection.scrub(sample: sample)
        }
        output.print(report) { Presentation.scrub(report) }
        guard report.healthy else {
            throw RegistryError(
                .integrity,
                "\(report.corrupt.count) corrupt blob(s) quarantined, \(report.missing.count) referenced blob(s) missing: run `modelreg repair --from REPO`"
            )
        }
    }
}

struct Repair: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Restore quarantined or lost blobs from a backup repository (needs an admin token, or --data)."
    )

    @Option(help: "Backup repository to take the blobs from.")
    var from: String

    @OptionGroup var target: RegistryTargetOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let repository = try BackupRepository(opening: from)
        let local = try target.claimedDirectory("repair")
        defer { local?.lock?.unlock() }
        let repairTarget: any RepairTarget =
            try local.map { try StoreRepairTarget(directory: $0.directory) }
            ?? RemoteRepairTarget(connection: target.client.connection)
        let report = try await Repairer(repository: repository, target: repairTarget).run(log: output.progress)
        output.print(report) { Presentation.repair(report) }
        guard report.stillMissing.isEmpty else {
            throw RegistryError(
                .integrity,
                "\(report.stillMissing.count) referenced blob(s) are still missing (\(report.unavailable.count) not in the repository): try another repository"
            )
        }
    }
}
