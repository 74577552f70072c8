import FileSystemBlobs
import Foundation
import GRDB
import ModelRegistryCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// SIGKILLs the real server (and the client working with it, as a node failure would) at seeded random
/// moments during pushes, alias moves, garbage collections and backups, restarts it on the same data
/// directory and checks what must survive any crash: the database is intact, every published file's blob
/// is there and hashes to its name, nothing partial sits in the blob store or a published location, aliases
/// point to published versions, and the interrupted work completes (an upload resumes) or is cleaned.
/// `gc --data` takes the directory's lock, so it runs (and is killed) while the server is stopped.
///
/// `MODELREG_CRASH_ITERATIONS` (default 50) sets the number of kills, `MODELREG_CRASH_SEED` repeats a run.
@Suite(.serialized) struct CrashConsistencyTests {
    @Test func everyKillLeavesAConsistentRegistry() throws {
        let environment = ProcessInfo.processInfo.environment
        let iterations = environment["MODELREG_CRASH_ITERATIONS"].flatMap { Int($0) } ?? 50
        let seed = environment["MODELREG_CRASH_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 0...UInt64.max)
        print(
            "crash consistency: seed \(seed), \(iterations) iterations (MODELREG_CRASH_SEED=\(seed) repeats this run)")
        let started = Date()
        let run = try CrashRun(seed: seed)
        for iteration in 0..<iterations {
            try run.iteration(iteration)
        }
        try run.finish()
        let landed = run.kills.map { "\($0.key) \($0.value.whileRunning)/\($0.value.total)" }.sorted().joined(
            separator: ", ")
        print(
            "crash consistency: seed \(seed), \(iterations) kills (while the operation ran / all: \(landed)), \(run.resumedPushes) pushes resumed bytes, \(Int(Date().timeIntervalSince(started))) s"
        )
    }

    /// What servers of earlier versions left (a database snapshot a killed one was writing, the cache image
    /// records now kept in the database) is removed when it starts; files of other tools in `tmp/` are not its
    /// to remove.
    @Test func theLeftoversOfAKilledServerAreRemovedAtStart() throws {
        let scratch = try Scratch()
        let data = scratch.url("data")
        try ServerProcess(data: data).kill()
        let snapshot = data.appendingPathComponent("tmp/snapshot-\(UUID().uuidString.lowercased()).sqlite")
        let record = data.appendingPathComponent("images/m/\(String(repeating: "ab", count: 32)).flat.json")
        let foreign = data.appendingPathComponent("tmp/repair-\(UUID().uuidString.lowercased())")
        try FileManager.default.createDirectory(
            at: record.deletingLastPathComponent(), withIntermediateDirectories: true)
        for file in [snapshot, record, foreign] { try Data("partial".utf8).write(to: file) }

        let server = try ServerProcess(data: data)
        #expect(!FileManager.default.fileExists(atPath: snapshot.path))
        #expect(!FileManager.default.fileExists(atPath: data.appendingPathComponent("images").path))
        #expect(FileManager.default.fileExists(atPath: foreign.path))
        server.stop()
    }
}

/// One run: a registry that lives through every kill, and what the test knows it must hold.
private final class CrashRun {
    enum Operation: CustomStringConvertible {
        case push(version: String)
        case moveAlias(alias: String, version: String)
        case collectThroughServer
        case collectOnDataDirectory
        case backupThroughServer
        case backupOfDataDirectory

        var kind: String {
            switch self {
            case .push: "push"
            case .moveAlias: "alias"
            case .collectThroughServer, .collectOnDataDirectory: "gc"
            case .backupThroughServer, .backupOfDataDirectory: "backup"
            }
        }

        /// `gc --data` takes the data directory's lock, as `serve` does: it runs while no server does.
        var needsTheDirectoryToItself: Bool {
            if case .collectOnDataDirectory = self { return true }
            return false
        }

        var description: String {
            switch self {
            case .push(let version): "push m:\(version)"
            case .moveAlias(let alias, let version): "alias set m \(alias) \(version)"
            case .collectThroughServer: "gc through the server"
            case .collectOnDataDirectory: "gc --data"
            case .backupThroughServer: "backup through the server"
            case .backupOfDataDirectory: "backup --data"
            }
        }
    }

    let seed: UInt64
    var random: SplitMix
    let scratch: Scratch
    let data: URL
    let repository: URL
    var server: ServerProcess
    /// Versions pushed to completion and not deleted, oldest first.
    var published: [String] = []
    var aliases: [String: String] = [:]
    /// How long each kind of operation took when it last ran to completion: kills land within that window.
    var windows: [String: TimeInterval] = [:]
    var kills: [String: (total: Int, whileRunning: Int)] = [:]
    var resumedPushes = 0
    /// Blob files already hashed, by path, with the size, inode and time they had: blobs never change.
    var verified: [String: [Int]] = [:]

    init(seed: UInt64) throws {
        self.seed = seed
        random = SplitMix(state: seed)
        scratch = try Scratch()
        data = scratch.url("data")
        repository = scratch.url("backups")
        server = try ServerProcess(data: data)
        // The baseline, each operation once to completion, which also measures how long each takes.
        try complete(.push(version: "0"), context: "setup")
        try complete(.moveAlias(alias: "prod", version: "0"), context: "setup")
        try complete(.collectThroughServer, context: "setup")
        try complete(.backupThroughServer, context: "setup")
    }

    func iteration(_ index: Int) throws {
        let operation = try choose(index)
        let context = "seed \(seed), iteration \(index): \(operation)"
        if operation.needsTheDirectoryToItself { server.stop() }
        let client = try CommandProcess(arguments(operation), environment: server.environment)
        if case .push = operation, Bool.random(using: &random) {
            // Half the pushes are killed once an upload has received a random share of the 8 MiB file, the
            // moment a timed kill rarely hits on loopback; if the push finishes first, it is killed after.
            let bytes = Int.random(in: 1...(8 << 20), using: &random)
            try? waitUntil("an upload holds \(bytes) bytes", timeout: 30, interval: 500) {
                !client.isRunning || uploadSizes().contains { $0 >= bytes }
            }
        } else {
            let window = windows[operation.kind] ?? 0.5
            usleep(useconds_t(Double.random(in: 0..<(window * 1.2), using: &random) * 1_000_000))
        }
        let running = client.isRunning
        server.kill()
        client.kill()
        kills[operation.kind, default: (0, 0)].total += 1
        if running { kills[operation.kind, default: (0, 0)].whileRunning += 1 }

        try checkStoredState(context + ", after the kill", afterKill: true)
        let restarted = Date()
        server = try ServerProcess(data: data)
        try checkNothingLeftOver(since: restarted, context + ", after the restart")
        try complete(operation, context: context)
        try checkStoredState(context + ", after completing it")
    }

    /// Pushes most often (they write the most), then the rest evenly; GC first deletes a version so that it
    /// has garbage to remove.
    func choose(_ index: Int) throws -> Operation {
        switch Int.random(in: 0..<10, using: &random) {
        case 0..<4:
            return .push(version: "\(index + 1)")
        case 4..<6:
            let version = published[Int.random(in: 0..<published.count, using: &random)]
            return .moveAlias(alias: Bool.random(using: &random) ? "prod" : "canary", version: version)
        case 6..<8:
            try deleteAnUnaliasedVersion()
            return Bool.random(using: &random) ? .collectThroughServer : .collectOnDataDirectory
        default:
            return Bool.random(using: &random) ? .backupThroughServer : .backupOfDataDirectory
        }
    }

    func deleteAnUnaliasedVersion() throws {
        let candidates = published.filter { !aliases.values.contains($0) }
        guard candidates.count > 1 else { return }
        let version = candidates[Int.random(in: 0..<candidates.count, using: &random)]
        let deleted = try modelreg(["delete", "m:\(version)"], environment: server.environment)
        try #require(deleted.status == 0, "seed \(seed): delete m:\(version): \(deleted)")
        published.removeAll { $0 == version }
    }

    func arguments(_ operation: Operation) -> [String] {
        switch operation {
        case .push(let version): ["push", model(version).path, "m:\(version)", "--json"]
        case .moveAlias(let alias, let version): ["alias", "set", "m", alias, version]
        case .collectThroughServer: ["gc", "--grace", "0s", "--json"]
        case .collectOnDataDirectory: ["gc", "--grace", "0s", "--data", data.path, "--json"]
        case .backupThroughServer: ["backup", "--to", repository.path]
        case .backupOfDataDirectory: ["backup", "--to", repository.path, "--data", data.path]
        }
    }

    /// Runs an operation to completion, as the operator would after a crash: on the live server, or with
    /// the server stopped for one that needs the directory to itself.
    func complete(_ operation: Operation, context: String) throws {
        if operation.needsTheDirectoryToItself { server.stop() }
        let started = Date()
        let result = try modelreg(arguments(operation), environment: server.environment)
        windows[operation.kind] = Date().timeIntervalSince(started)
        if operation.needsTheDirectoryToItself { server = try ServerProcess(data: data) }
        try #require(result.status == 0, "\(context): completing it failed: \(result)")
        switch operation {
        case .push(let version):
            if try result.json(PushReportJSON.self).bytesResumed > 0 { resumedPushes += 1 }
            published.append(version)
        case .moveAlias(let alias, let version):
            aliases[alias] = version
        case .backupThroughServer, .backupOfDataDirectory:
            let verify = try modelreg(["backup", "verify", "--repo", repository.path])
            #expect(verify.status == 0, "\(context): \(verify)")
            let leftovers = try FileManager.default.contentsOfDirectory(
                atPath: repository.appendingPathComponent("tmp").path)
            #expect(leftovers.isEmpty, "\(context): a completed backup leaves nothing in the repository's tmp/")
        case .collectThroughServer, .collectOnDataDirectory:
            break
        }
    }

    /// A model sharing most blobs with the others (configs, tokenizer, the first shard) and differing in
    /// the second shard and 8 MiB of seeded bytes, large enough for kills to land mid-upload.
    func model(_ version: String) -> URL {
        let root = scratch.url("models/\(version)")
        guard !FileManager.default.fileExists(atPath: root.path) else { return root }
        do {
            let base = scratch.url("models/base")
            if !FileManager.default.fileExists(atPath: base.path) {
                try TestModel.write(to: base, seed: seed, shards: 2, hidden: 256)
            }
            let variation = version.utf8.reduce(UInt64(0)) { $0 &* 31 &+ UInt64($1) }
            try TestModel.write(to: root, seed: seed &+ variation, shards: 2, hidden: 256)
            let shared = "model-00001-of-00002.safetensors"
            try FileManager.default.removeItem(at: root.appendingPathComponent(shared))
            try FileManager.default.copyItem(
                at: base.appendingPathComponent(shared), to: root.appendingPathComponent(shared))
            var generator = SplitMix(state: seed ^ variation)
            let words = (0..<(8 << 20) / 8).map { _ in generator.next() }
            try words.withUnsafeBytes { Data($0) }.write(to: root.appendingPathComponent("extra.bin"))
        } catch {
            Issue.record("cannot write model \(version): \(error)")
        }
        return root
    }

    // MARK: Invariants

    /// What must hold on disk whenever no process runs: after a kill and after a completed operation.
    func checkStoredState(_ context: String, afterKill: Bool = false) throws {
        let storedBlobs = try checkBlobStore(context, afterKill: afterKill)
        let database = try DatabaseQueue(path: data.appendingPathComponent("registry.sqlite").path)
        defer { try? database.close() }
        try database.read { db in
            let integrity = try String.fetchAll(db, sql: "PRAGMA integrity_check")
            #expect(integrity == ["ok"], "\(context): integrity_check")
            let foreignKeys = try Row.fetchAll(db, sql: "PRAGMA foreign_key_check")
            #expect(foreignKeys.isEmpty, "\(context): foreign_key_check \(foreignKeys)")

            for row in try Row.fetchAll(db, sql: "SELECT manifest_digest, manifest FROM variants") {
                let manifest: Data = row["manifest"]
                #expect(
                    Digest.of(Array(manifest)).description == row["manifest_digest"] as String,
                    "\(context): a manifest's bytes match its digest")
            }
            for row in try Row.fetchAll(db, sql: "SELECT DISTINCT digest, size FROM manifest_files") {
                let digest: String = row["digest"]
                let size: Int64 = row["size"]
                #expect(
                    storedBlobs[digest] == size,
                    "\(context): published blob \(digest) of \(size) bytes is stored as \(storedBlobs[digest].map(String.init) ?? "nothing")"
                )
            }
            let aliasRows = try Row.fetchAll(
                db,
                sql: """
                    SELECT a.name, v.name AS version, a.variant,
                           (SELECT COUNT(*) FROM variants x WHERE x.version_id = a.version_id AND (a.variant IS NULL OR x.name = a.variant)) AS variants,
                           (SELECT h.to_version FROM alias_history h WHERE h.model_id = a.model_id AND h.alias = a.name ORDER BY h.id DESC LIMIT 1) AS recorded
                    FROM aliases a LEFT JOIN versions v ON v.id = a.version_id
                    """)
            for row in aliasRows {
                let alias: String = row["name"]
                let version: String? = row["version"]
                #expect(
                    version != nil && (row["variants"] as Int) > 0,
                    "\(context): alias \(alias) points to a published version")
                #expect(
                    row["recorded"] as String? == version,
                    "\(context): alias \(alias)'s last history entry is its target")
            }
            let versions = Set(
                try String.fetchAll(db, sql: "SELECT v.name FROM versions v JOIN variants x ON x.version_id = v.id"))
            #expect(Set(published).isSubset(of: versions), "\(context): every completed push is published")
        }
        let orphanedImages = try database.read { db in
            try Int.fetchOne(
                db,
                sql: """
                    SELECT COUNT(*) FROM cache_images c WHERE NOT EXISTS (
                        SELECT 1 FROM variants va JOIN versions v ON va.version_id = v.id
                        WHERE v.model_id = c.model_id AND va.manifest_digest = c.manifest_digest)
                    """) ?? 0
        }
        #expect(orphanedImages == 0, "\(context): every cache image record belongs to a variant")
    }

    /// Every file under `blobs/` is a complete blob, named by the digest of its bytes, in its prefix
    /// directory: there is no partial or temporary file. Right after a kill, a blob a deletion had set aside
    /// (`<digest>.deleting`, put back or removed at the next start) counts as stored. Returns the stored
    /// blobs' sizes by digest.
    func checkBlobStore(_ context: String, afterKill: Bool) throws -> [String: Int64] {
        let root = data.appendingPathComponent("blobs/sha256")
        var stored: [String: Int64] = [:]
        var seen: Set<String> = []
        for prefix in try FileManager.default.contentsOfDirectory(atPath: root.path) {
            let directory = root.appendingPathComponent(prefix)
            let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            #expect(
                prefix.count == 2 && prefix.allSatisfy(\.isHexDigit),
                "\(context): blobs/sha256/\(prefix) is a prefix directory")
            for name in names {
                let path = directory.appendingPathComponent(name).path
                seen.insert(path)
                var info = stat()
                try #require(lstat(path, &info) == 0)
                let identity = [
                    Int(info.st_size), Int(info.st_ino), Int(info.st_mtim.tv_sec), Int(info.st_mtim.tv_nsec),
                ]
                let setAside = afterKill && name.hasSuffix(DataDirectory.deletingSuffix)
                let named = try? Digest(
                    parsing: Digest.prefix
                        + (setAside ? String(name.dropLast(DataDirectory.deletingSuffix.count)) : name))
                #expect(
                    named != nil && name.hasPrefix(prefix) && (info.st_mode & S_IFMT) == S_IFREG,
                    "\(context): \(path) is a blob file, not a partial or temporary one")
                guard let named else { continue }
                if verified[path] != identity {
                    let actual = Digest.of(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
                    #expect(actual == named, "\(context): \(path) hashes to \(actual)")
                    verified[path] = identity
                }
                stored[named.description] = Int64(info.st_size)
            }
        }
        verified = verified.filter { seen.contains($0.key) }
        return stored
    }

    /// After a restart: the scratch files of the killed process are gone, and every upload left behind can be resumed by digest or is swept by its TTL. Files the
    /// new process writes meanwhile (it rebuilds missing images at once) are younger than its start.
    func checkNothingLeftOver(since restart: Date, _ context: String) throws {
        let scratchFiles = filesBelow(data.appendingPathComponent("tmp")).filter { modified($0) < restart }
        #expect(scratchFiles.isEmpty, "\(context): tmp/ holds \(scratchFiles)")
        // Only uploads and their records (digest, hash state, a hash state a kill left unrenamed), which the
        // sweeper knows; a digest record a kill cut short is empty.
        let uploads = data.appendingPathComponent("uploads")
        for name in try FileManager.default.contentsOfDirectory(atPath: uploads.path) {
            let suffix = [".digest", ".hash.tmp", ".hash"].first { name.hasSuffix($0) } ?? ""
            let id = String(name.dropLast(suffix.count))
            #expect(
                UUID(uuidString: id)?.uuidString.lowercased() == id,
                "\(context): uploads/\(name) is an upload or its record")
            guard name.hasSuffix(".digest") else { continue }
            let text = try String(contentsOf: uploads.appendingPathComponent(name), encoding: .utf8)
            #expect(text.isEmpty || (try? Digest(parsing: text)) != nil, "\(context): uploads/\(name) names a digest")
        }
    }

    /// The end of the run: everything verifies through the server, the last backup restores to the same
    /// registry, the newest version pulls back byte for byte, and uploads of a killed push that nobody
    /// resumes are swept once their TTL passes.
    func finish() throws {
        let context = "seed \(seed), at the end"
        let verify = try modelreg(["verify", "--json"], environment: server.environment)
        #expect(verify.status == 0, "\(context): \(verify)")
        let backup = try modelreg(["backup", "--to", repository.path], environment: server.environment)
        try #require(backup.status == 0, "\(context): \(backup)")
        let readData = try modelreg(["backup", "verify", "--repo", repository.path, "--read-data"])
        #expect(readData.status == 0, "\(context): \(readData)")
        let restored = scratch.url("restored")
        let restore = try modelreg(["restore", "--from", repository.path, "--data", restored.path])
        #expect(restore.status == 0, "\(context): \(restore)")
        #expect(try databaseRows(restored) == databaseRows(data), "\(context): the restored registry is the same")
        let newest = try #require(published.last)
        let pulled = scratch.url("pulled")
        let pull = try modelreg(["pull", "m:\(newest)", "--dest", pulled.path], environment: server.environment)
        try #require(pull.status == 0, "\(context): \(pull)")
        try expectSameTree(model(newest), pulled)

        let push = try CommandProcess(arguments(.push(version: "abandoned")), environment: server.environment)
        let uploads = data.appendingPathComponent("uploads")
        try waitUntil("an upload holds bytes", timeout: 60) { uploadSizes().contains { $0 > 0 } }
        server.kill()
        push.kill()
        server = try ServerProcess(data: data, extraArguments: ["--upload-ttl", "1s"])
        try? waitUntil("the abandoned uploads are swept", timeout: 60) {
            (try? FileManager.default.contentsOfDirectory(atPath: uploads.path))?.isEmpty == true
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: uploads.path)
        #expect(
            left.isEmpty,
            "\(context): uploads/ still holds \(left) a minute after their TTL of 1 s; server log: \(server.logText)")
        server.stop()
    }

    func modified(_ path: String) -> Date {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date) ?? .distantPast
    }

    /// The sizes of the uploads in progress (not their digest records).
    func uploadSizes() -> [Int] {
        let uploads = data.appendingPathComponent("uploads")
        let entries =
            (try? FileManager.default.contentsOfDirectory(at: uploads, includingPropertiesForKeys: [.fileSizeKey]))
            ?? []
        return entries.filter { $0.pathExtension != "digest" }.compactMap {
            try? $0.resourceValues(forKeys: [.fileSizeKey]).fileSize
        }
    }

    /// Regular files under a directory, as paths.
    func filesBelow(_ root: URL) -> [String] {
        regularFiles(root).map { root.appendingPathComponent($0).path }
    }
}
