import AsyncHTTPClient
import FileSystemBlobs
import Foundation
import GRDB
import ModelRegistryCore
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

struct SnapshotListJSON: Decodable {
    struct Entry: Decodable {
        var id: String
        var models: Int
        var versions: Int
    }

    var snapshots: [Entry]
}

/// Every row of the tables that hold what a registry serves, each named by its natural key rather than by row
/// ids (a restore imports an export, which keeps names, times, actors and the ids of history and audit
/// entries, not the row ids of models, versions and variants), for comparing two registries.
func databaseRows(_ data: URL) throws -> [String: [[String]]] {
    let database = try DatabaseQueue(path: data.appendingPathComponent("registry.sqlite").path)
    defer { try? database.close() }
    let version = "versions v JOIN models m ON v.model_id = m.id"
    let variant = "variants va JOIN versions v ON va.version_id = v.id JOIN models m ON v.model_id = m.id"
    let queries = [
        "models": "SELECT name, created_at FROM models",
        "versions": """
        SELECT m.name, v.name, v.created_at, v.deprecated_at, v.deprecated_by, v.deprecation_reason FROM \(version)
        """,
        "variants": """
        SELECT m.name, v.name, va.name, va.manifest_digest, va.manifest, va.media_type, va.format, va.total_size,
               va.file_count, va.created_at, va.created_by FROM \(variant)
        """,
        "manifest_files": """
        SELECT m.name, v.name, va.name, f.path, f.digest, f.size, f.executable
        FROM manifest_files f JOIN variants va ON f.variant_id = va.id JOIN versions v ON va.version_id = v.id
        JOIN models m ON v.model_id = m.id
        """,
        "aliases": """
        SELECT m.name, a.name, v.name, a.variant, a.updated_at, a.updated_by
        FROM aliases a JOIN versions v ON a.version_id = v.id JOIN models m ON v.model_id = m.id
        """,
        "alias_history": """
        SELECT h.id, m.name, h.alias, h.action, h.from_version, h.from_variant, h.to_version, h.to_variant,
               h.actor, h.at FROM alias_history h JOIN models m ON h.model_id = m.id
        """,
        "tokens": "SELECT name, scope, hash, created_at, revoked_at FROM tokens",
        "deleted_versions": """
        SELECT m.name, d.name, d.deleted_at, d.deleted_by FROM deleted_versions d JOIN models m ON d.model_id = m.id
        """,
        "audit_log": "SELECT * FROM audit_log",
    ]
    return try database.read { db in
        try queries.mapValues { query in
            try Row.fetchAll(db, sql: query).map { $0.databaseValues.map(\.description) }.sorted {
                $0.lexicographicallyPrecedes($1)
            }
        }
    }
}

/// A directory of `count` files of random bytes, `size` bytes each.
func randomModel(_ root: URL, files count: Int, size: Int) throws {
    try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    let random = try #require(FileHandle(forReadingAtPath: "/dev/urandom"))
    defer { try? random.close() }
    for index in 0..<count {
        try random.readData(ofLength: size).write(to: root.appendingPathComponent("part-\(index).bin"))
    }
}

/// Backup, restore, GC, scrub and repair through the real binary against a real server.
@Suite(.serialized) struct MaintenanceTests {
    @Test func backupWhilePushingThenRestoreServesTheSameRegistry() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        let env = server.environment
        for seed in 1...2 {
            let model = scratch.url("model-\(seed)")
            try TestModel.write(to: model, seed: UInt64(seed))
            #expect(try modelreg(["push", model.path, "m:\(seed).0"], environment: env).status == 0)
        }
        #expect(try modelreg(["alias", "set", "m", "prod", "1.0"], environment: env).status == 0)
        #expect(try modelreg(["alias", "set", "m", "prod", "2.0"], environment: env).status == 0)
        #expect(try modelreg(["token", "create", "--scope", "read", "--name", "viewer"], environment: env).status == 0)

        // Another process pushes new versions while backups are taken.
        let pushes = Mutex<[CommandResult]>([])
        let pusherDone = DispatchSemaphore(value: 0)
        let models = (3...8).map { scratch.url("model-\($0)") }
        for (index, model) in models.enumerated() { try TestModel.write(to: model, seed: UInt64(index + 3)) }
        Thread.detachNewThread {
            for (index, model) in models.enumerated() {
                let result = try? modelreg(["push", model.path, "m:\(index + 3).0"], environment: env)
                pushes.withLock { $0.append(result ?? CommandResult(status: -1, stdout: "", stderr: "did not run")) }
            }
            pusherDone.signal()
        }
        let repository = scratch.url("repo")
        var duringPushes: [CommandResult] = []
        for _ in 0..<3 { duringPushes.append(try modelreg(["backup", "--to", repository.path], environment: env)) }
        pusherDone.wait()
        for result in duringPushes + pushes.withLock({ $0 }) { #expect(result.status == 0, "\(result)") }

        // Each snapshot taken under load restores to a registry that verifies and serves what it held then.
        let snapshots = try modelreg(["backup", "ls", "--repo", repository.path, "--json"]).json(SnapshotListJSON.self)
            .snapshots
        #expect(snapshots.count == 3)
        let underLoad = scratch.url("restored-under-load")
        let restore = try modelreg([
            "restore", "--from", repository.path, "--snapshot", snapshots[1].id, "--data", underLoad.path,
        ])
        try #require(restore.status == 0, "\(restore)")
        #expect(try modelreg(["verify", "--data", underLoad.path]).status == 0)
        let partial = try databaseRows(underLoad)
        let original = try databaseRows(server.data)
        for (table, rows) in partial { #expect(Set(rows).isSubset(of: Set(original[table] ?? [])), "\(table)") }

        // A backup after the pushes restores to exactly the same registry.
        #expect(try modelreg(["backup", "--to", repository.path], environment: env).status == 0)
        #expect(try modelreg(["backup", "verify", "--repo", repository.path, "--read-data"]).status == 0)
        let restored = scratch.url("restored")
        #expect(try modelreg(["restore", "--from", repository.path, "--data", restored.path]).status == 0)
        // Secrets are never in a backup; the original admin token works on the copy because its hash does.
        try FileManager.default.copyItem(
            at: server.data.appendingPathComponent("admin.token"), to: restored.appendingPathComponent("admin.token"))
        let copy = try ServerProcess(data: restored)
        let copyEnv = ["MODELREG_URL": copy.url, "MODELREG_TOKEN": server.adminToken]
        #expect(try databaseRows(restored) == databaseRows(server.data))
        for arguments in [
            ["ls", "--json"], ["show", "m", "--json"], ["token", "list", "--json"], ["alias", "ls", "m", "--json"],
        ] {
            let left = try modelreg(arguments, environment: env)
            let right = try modelreg(arguments, environment: copyEnv)
            #expect(left.status == 0 && left.stdout == right.stdout, "\(arguments)")
        }
        for version in 1...8 {
            let pulled = scratch.url("pulled-\(version)")
            let pull = try modelreg(["pull", "m:\(version).0", "--dest", pulled.path], environment: copyEnv)
            try #require(pull.status == 0, "\(pull)")
            try expectSameTree(scratch.url("model-\(version)"), pulled)
        }
        #expect(try modelreg(["restore", "--from", repository.path, "--data", restored.path]).status == 7)
        copy.stop()
        server.stop()
    }

    @Test func aBackupKilledMidwayIsFollowedByOneThatCompletes() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        let model = scratch.url("big")
        try randomModel(model, files: 6, size: 8 << 20)
        #expect(
            try modelreg(["push", model.path, "big:1.0", "--no-inspect"], environment: server.environment).status == 0)

        let repository = scratch.url("repo")
        let first = try CommandProcess(
            ["backup", "--to", repository.path, "--jobs", "1"], environment: server.environment)
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, first.isRunning,
            (try? FileManager.default.contentsOfDirectory(atPath: repository.appendingPathComponent("tmp").path))?
                .contains(where: { $0.hasPrefix("blob-") }) != true
        {
            usleep(2_000)
        }
        first.kill()
        #expect(first.wasKilled, "the first backup was killed while it copied blobs")

        let second = try modelreg(["backup", "--to", repository.path, "--json"], environment: server.environment)
        try #require(second.status == 0, "\(second)")
        let verify = try modelreg(["backup", "verify", "--repo", repository.path, "--read-data"])
        #expect(verify.status == 0, "\(verify)")
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: repository.appendingPathComponent("tmp").path).isEmpty)
        let restored = scratch.url("restored")
        #expect(try modelreg(["restore", "--from", repository.path, "--data", restored.path]).status == 0)
        #expect(try modelreg(["verify", "--data", restored.path]).status == 0)
        server.stop()
    }

    @Test func twoBackupsNeverRunAtOnceOnOneRepository() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        let repository = scratch.url("repo")
        #expect(try modelreg(["backup", "--to", repository.path], environment: server.environment).status == 0)
        let descriptor = open(repository.appendingPathComponent("lock").path, O_RDWR)
        try #require(descriptor >= 0)
        try #require(flock(descriptor, LOCK_EX | LOCK_NB) == 0)
        let refused = try modelreg(["backup", "--to", repository.path], environment: server.environment)
        #expect(refused.status == 7)
        #expect(refused.stderr.contains("in use by another modelreg process"), "\(refused)")
        close(descriptor)
        #expect(try modelreg(["backup", "--to", repository.path], environment: server.environment).status == 0)
        server.stop()
    }

    @Test func aFlippedBitInTheRepositoryIsFoundByReadData() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        let model = scratch.url("model")
        try TestModel.write(to: model)
        #expect(try modelreg(["push", model.path, "m:1.0"], environment: server.environment).status == 0)
        let repository = scratch.url("repo")
        #expect(try modelreg(["backup", "--to", repository.path, "--data", server.data.path]).status == 0)

        let weights = Digest.of(Array(try Data(contentsOf: model.appendingPathComponent("model.safetensors"))))
        let stored = repository.appendingPathComponent("blobs/sha256/\(weights.hex.prefix(2))/\(weights.hex)")
        var bytes = try Data(contentsOf: stored)
        bytes[bytes.count / 2] ^= 0x01
        try bytes.write(to: stored)

        #expect(try modelreg(["backup", "verify", "--repo", repository.path]).status == 0)
        let readData = try modelreg(["backup", "verify", "--repo", repository.path, "--read-data"])
        #expect(readData.status == 5)
        #expect(readData.stdout.contains("\(weights) is corrupt"), "\(readData)")
        let restored = scratch.url("restored")
        let restore = try modelreg(["restore", "--from", repository.path, "--data", restored.path])
        #expect(restore.status == 5, "\(restore)")

        // Issue 15.3: the unfinished restore is no registry a server starts on, and a rerun with --force
        // takes it, here once the repository's copy is good again.
        let refused = try modelreg(["serve", "--port", "0", "--data", restored.path])
        #expect(refused.status == 7 && refused.stderr.contains("unfinished restore"), "\(refused)")
        #expect(
            try modelreg(["restore", "--from", repository.path, "--data", restored.path, "--force"]).status == 5,
            "still corrupt: 5, not 7")
        try Data(contentsOf: model.appendingPathComponent("model.safetensors")).write(to: stored)
        let rerun = try modelreg(["restore", "--from", repository.path, "--data", restored.path, "--force"])
        #expect(rerun.status == 0, "\(rerun)")
        let copy = try ServerProcess(data: restored, adminToken: server.adminToken)
        let pulled = scratch.url("pulled")
        #expect(try modelreg(["pull", "m:1.0", "--dest", pulled.path], environment: copy.environment).status == 0)
        try expectSameTree(model, pulled)
        copy.stop()

        // Issue 15.3: restoring over the data directory of a running server is refused, naming the holder,
        // and leaves it serving.
        let live = try modelreg(["restore", "--from", repository.path, "--data", server.data.path, "--force"])
        #expect(
            live.status == 7 && live.stderr.hasPrefix("error: ")
                && live.stderr.contains("in use by another modelreg server"), "\(live)")
        #expect(
            try modelreg(["pull", "m:1.0", "--dest", scratch.url("still").path], environment: server.environment).status
                == 0)
        server.stop()
    }

    @Test func aFlippedBitInTheRegistryIsFoundRefusedAndRepaired() async throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        let env = server.environment
        let model = scratch.url("model")
        try TestModel.write(to: model)
        #expect(try modelreg(["push", model.path, "m:1.0"], environment: env).status == 0)
        let repository = scratch.url("repo")
        #expect(try modelreg(["backup", "--to", repository.path], environment: env).status == 0)

        let weights = Digest.of(Array(try Data(contentsOf: model.appendingPathComponent("model.safetensors"))))
        let blob = server.data.appendingPathComponent("blobs/sha256/\(weights.hex.prefix(2))/\(weights.hex)")
        var bytes = try Data(contentsOf: blob)
        bytes[bytes.count - 3] ^= 0x40
        try bytes.write(to: blob)

        // Before the scrub the client's own check refuses it; after, the server no longer serves it.
        #expect(try modelreg(["pull", "m:1.0", "--dest", scratch.url("before").path], environment: env).status == 5)
        let verify = try modelreg(["verify", "--json"], environment: env)
        #expect(verify.status == 5)
        #expect(verify.stdout.contains(weights.description))
        #expect(
            try modelreg(["pull", "m:1.0", "--dest", scratch.url("quarantined").path], environment: env).status == 3)
        #expect(!FileManager.default.fileExists(atPath: scratch.url("quarantined").path))
        #expect(try await metric("modelreg_quarantined_blobs", server) == "1.0")
        #expect(try await metric("modelreg_corrupt_blobs_found_total", server) == "1")

        let repair = try modelreg(["repair", "--from", repository.path], environment: env)
        #expect(repair.status == 0, "\(repair)")
        #expect(try modelreg(["verify"], environment: env).status == 0)
        #expect(try await metric("modelreg_quarantined_blobs", server) == "0.0")
        let pulled = scratch.url("after")
        #expect(try modelreg(["pull", "m:1.0", "--dest", pulled.path], environment: env).status == 0)
        try expectSameTree(model, pulled)
        server.stop()
    }

    func metric(_ name: String, _ server: ServerProcess) async throws -> String? {
        let response = try await HTTPClient.shared.execute(
            HTTPClientRequest(url: server.url + "/metrics"), timeout: .seconds(30))
        let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
        return text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.map {
            String($0.split(separator: " ")[1])
        }
    }

    @Test func gcInALoopDuringPushesNeverDeletesAReferencedBlob() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        let env = server.environment
        // Old garbage for the collector to find: blobs nothing references, uploaded two hours ago.
        var garbage: [Digest] = []
        for index in 0..<5 {
            let content = Data("garbage \(index) \(UUID())".utf8)
            let digest = Digest.of(Array(content))
            let directory = server.data.appendingPathComponent("blobs/sha256/\(digest.hex.prefix(2))")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try content.write(to: directory.appendingPathComponent(digest.hex))
            try FileManager.default.setAttributes(
                [.modificationDate: Date().addingTimeInterval(-7200)],
                ofItemAtPath: directory.appendingPathComponent(digest.hex).path)
            garbage.append(digest)
        }
        let models = (0..<50).map { scratch.url("model-\($0)") }
        for (index, model) in models.enumerated() { try TestModel.write(to: model, seed: UInt64(index + 100)) }

        let pushing = Atomic<Bool>(true)
        let collections = Mutex<[CommandResult]>([])
        let collectorDone = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            while pushing.load(ordering: .relaxed) {
                let result =
                    (try? modelreg(["gc", "--grace", "30s", "--json"], environment: env))
                    ?? CommandResult(status: -1, stdout: "", stderr: "did not run")
                collections.withLock { $0.append(result) }
            }
            collectorDone.signal()
        }
        for (index, model) in models.enumerated() {
            let push = try modelreg(["push", model.path, "m:\(index).0"], environment: env)
            #expect(push.status == 0, "\(push)")
        }
        pushing.store(false, ordering: .relaxed)
        collectorDone.wait()

        let runs = collections.withLock { $0 }
        #expect(runs.count >= 2)
        for run in runs { #expect(run.status == 0, "\(run)") }
        let verify = try modelreg(["verify", "--json"], environment: env)
        #expect(verify.status == 0, "\(verify)")
        for digest in garbage {
            #expect(
                !FileManager.default.fileExists(
                    atPath: server.data.appendingPathComponent("blobs/sha256/\(digest.hex.prefix(2))/\(digest.hex)")
                        .path))
        }
        for index in [0, 9, 19] {
            let pulled = scratch.url("pulled-\(index)")
            #expect(try modelreg(["pull", "m:\(index).0", "--dest", pulled.path], environment: env).status == 0)
            try expectSameTree(models[index], pulled)
        }
        server.stop()
    }

    /// Issue 15.3: `gc`, `verify` and `repair` with `--data` used to run beside a live server (gc exited 0);
    /// they write into the directory, so they take its lock as a second `serve` would.
    @Test func maintenanceThatWritesRefusesADataDirectoryAServerRuns() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        let model = scratch.url("model")
        try TestModel.write(to: model)
        #expect(try modelreg(["push", model.path, "m:1.0"], environment: server.environment).status == 0)
        let repository = scratch.url("repo")
        #expect(try modelreg(["backup", "--to", repository.path], environment: server.environment).status == 0)
        let data = server.data.path
        for (command, arguments) in [
            ("gc", ["gc", "--grace", "0s"]), ("verify", ["verify"]), ("repair", ["repair", "--from", repository.path]),
        ] {
            let refused = try modelreg(arguments + ["--data", data])
            #expect(refused.status == 7, "\(refused)")
            let lines = refused.stderr.split(separator: "\n")
            #expect(lines.count == 1 && lines[0].hasPrefix("error: the data directory \(data) is in use"), "\(refused)")
            #expect(refused.stderr.contains("pid \(server.process.processIdentifier)"), "names the server: \(refused)")
            #expect(refused.stderr.contains("run `modelreg \(command)` through it"), "\(refused)")
        }
        let dryRun = try modelreg(["gc", "--dry-run", "--data", data, "--json"])
        #expect(dryRun.status == 0, "a dry run only reads: \(dryRun)")
        #expect(try httpStatus(server.url + "/health/ready") == 200, "the server keeps serving")

        server.stop()
        for arguments in [["gc", "--grace", "0s"], ["verify"], ["repair", "--from", repository.path]] {
            let result = try modelreg(arguments + ["--data", data])
            #expect(result.status == 0, "with no server: \(result)")
        }
        let next = try ServerProcess(data: server.data)
        #expect(try httpStatus(next.url + "/health/ready") == 200, "the maintenance commands released the directory")
        next.stop()
    }

    @Test func gcFreesTheBlobsOnlyADeletedVersionUsed() throws {
        struct Report: Decodable {
            struct Entry: Decodable { var digest: String }
            var deleted: [Entry]
        }
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        for seed in 1...2 {
            let model = scratch.url("model-\(seed)")
            try TestModel.write(to: model, seed: UInt64(seed))
            #expect(try modelreg(["push", model.path, "m:\(seed).0"], environment: server.environment).status == 0)
        }
        let repository = scratch.url("repo")
        #expect(try modelreg(["backup", "--to", repository.path], environment: server.environment).status == 0)
        #expect(try modelreg(["delete", "m:1.0"], environment: server.environment).status == 0)

        let collected = try modelreg(["gc", "--grace", "0s", "--json"], environment: server.environment)
        try #require(collected.status == 0, "\(collected)")
        let deleted = Set(try collected.json(Report.self).deleted.map(\.digest))
        let weights = Digest.of(Array(try Data(contentsOf: scratch.url("model-1/model.safetensors")))).description
        let sharedConfig = Digest.of(Array(try Data(contentsOf: scratch.url("model-1/config.json")))).description
        #expect(deleted.contains(weights))
        #expect(!deleted.contains(sharedConfig))
        let pulled = scratch.url("pulled")
        #expect(try modelreg(["pull", "m:2.0", "--dest", pulled.path], environment: server.environment).status == 0)
        try expectSameTree(scratch.url("model-2"), pulled)

        // The backup taken before the delete still holds the deleted version, bytes and all.
        let restored = scratch.url("restored")
        #expect(try modelreg(["restore", "--from", repository.path, "--data", restored.path]).status == 0)
        #expect(try modelreg(["verify", "--data", restored.path]).status == 0)
        #expect(try databaseRows(restored)["versions"]?.count == 2)
        server.stop()
    }

    /// The commands of the README's "Backup and restore" block, as written, with the repository in a scratch directory.
    @Test func theReadmeBackupCommandsWorkAsWritten() throws {
        let readme = try String(contentsOf: repositoryRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let section = try #require(readme.range(of: "## Backup and restore")).upperBound
        let block = try #require(readme.range(of: "```sh\n", range: section..<readme.endIndex))
        let end = try #require(readme.range(of: "```", range: block.upperBound..<readme.endIndex))
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("modelreg-data"))
        try TestModel.write(to: scratch.url("model"))
        #expect(
            try modelreg(["push", scratch.url("model").path, "m:1.0"], environment: server.environment).status == 0)
        let commands = readme[block.upperBound..<end.lowerBound].split(separator: "\n").map { line in
            (line.split(separator: "#", maxSplits: 1).first ?? "").split(separator: " ").map {
                $0.replacingOccurrences(of: "/backups/modelreg", with: scratch.url("backups").path)
            }
        }
        #expect(commands.count == 7)
        for command in commands {
            try #require(command.first == "modelreg", "\(command)")
            let result = try modelreg(Array(command.dropFirst()), environment: server.environment, in: scratch.root)
            #expect(result.status == 0, "\(command.joined(separator: " ")): \(result)")
        }
        server.stop()
    }

    @Test func pruneKeepsExactlyWhatThePolicySays() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        let repository = scratch.url("repo")
        for seed in 1...4 {
            let model = scratch.url("model-\(seed)")
            try TestModel.write(to: model, seed: UInt64(seed))
            #expect(try modelreg(["push", model.path, "m:\(seed).0"], environment: server.environment).status == 0)
            #expect(try modelreg(["backup", "--to", repository.path, "--data", server.data.path]).status == 0)
        }
        func ids() throws -> [String] {
            try modelreg(["backup", "ls", "--repo", repository.path, "--json"]).json(SnapshotListJSON.self).snapshots
                .map(\.id)
        }
        let all = try ids()
        #expect(all.count == 4)

        let dryRun = try modelreg(["backup", "prune", "--repo", repository.path, "--keep-last", "2", "--dry-run"])
        #expect(dryRun.status == 0, "\(dryRun)")
        #expect(try ids() == all)
        #expect(try modelreg(["backup", "prune", "--repo", repository.path, "--keep-last", "2"]).status == 0)
        #expect(try ids() == Array(all.suffix(2)))
        #expect(try modelreg(["backup", "verify", "--repo", repository.path, "--read-data"]).status == 0)
        // Every snapshot was taken today: one daily snapshot is the newest.
        #expect(try modelreg(["backup", "prune", "--repo", repository.path, "--keep-daily", "1"]).status == 0)
        #expect(try ids() == [all[3]])
        #expect(try modelreg(["backup", "prune", "--repo", repository.path]).status == 64)
        let restored = scratch.url("restored")
        #expect(try modelreg(["restore", "--from", repository.path, "--data", restored.path]).status == 0)
        #expect(try databaseRows(restored) == databaseRows(server.data))
        server.stop()
    }
}
