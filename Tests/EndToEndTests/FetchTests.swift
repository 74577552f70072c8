import Foundation
import ModelRegistryCore
import TestServers
import Testing

struct FetchReportJSON: Decodable {
    var digest: String
    var alreadyInPlace: Bool
    var bytes: Int64
    var bytesDownloaded: Int64
    var bytesFromCache: Int64
    var bytesResumed: Int64
}

/// `modelreg fetch`, the init container's command, against a real server.
@Suite(.serialized) struct FetchTests {
    struct Fixture {
        let scratch: Scratch
        let server: ServerProcess
        let model: URL

        init(bigFile: Int = 0) throws {
            scratch = try Scratch()
            server = try ServerProcess(data: scratch.url("data"))
            model = scratch.url("model")
            try TestModel.write(to: model, shards: 2)
            if bigFile > 0 {
                // Zeros with a few marks: the size makes a transfer long enough to interrupt.
                var bytes = [UInt8](repeating: 0, count: bigFile)
                for index in stride(from: 0, to: bigFile, by: 4096) {
                    bytes[index] = UInt8(truncatingIfNeeded: index / 4096)
                }
                try Data(bytes).write(to: model.appendingPathComponent("weights-extra.bin"))
            }
            let push = try modelreg(
                ["push", model.path, "org/tiny:1.0", "--no-inspect"], environment: server.environment)
            try #require(push.status == 0, "\(push)")
            let alias = try modelreg(["alias", "set", "org/tiny", "prod", "1.0"], environment: server.environment)
            try #require(alias.status == 0, "\(alias)")
        }

        func fetch(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> CommandResult {
            try modelreg(["fetch", "org/tiny@prod", "--json"] + arguments, environment: server.environment)
        }

        /// Files of a fetched flat destination, without the marker.
        func expectFetched(_ destination: URL, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let marker = destination.appendingPathComponent(".modelreg-fetch.json")
            #expect(FileManager.default.fileExists(atPath: marker.path), sourceLocation: sourceLocation)
            try FileManager.default.removeItem(at: marker)
            try expectSameTree(model, destination, sourceLocation: sourceLocation)
            try Data("{}".utf8).write(to: marker)
        }

        /// Staging directories, journals and other scratch files of this tool's left anywhere in the scratch
        /// directory (a marker is not scratch: it is the commit point).
        func leftovers() throws -> [String] {
            try FileManager.default.subpathsOfDirectory(atPath: scratch.root.path).filter { path in
                guard !path.hasPrefix("data/") else { return false }
                let name = path.split(separator: "/").last.map(String.init) ?? path
                return name.hasPrefix(".modelreg-") && name != ".modelreg-fetch.json"
            }
        }
    }

    @Test func fetchIntoAnEmptyDirectoryThenAgainIsANoOp() throws {
        let fixture = try Fixture()
        let destination = fixture.scratch.url("models/tiny")
        let first = try fixture.fetch(["--dest", destination.path])
        try #require(first.status == 0, "\(first)")
        let report = try first.json(FetchReportJSON.self)
        #expect(!report.alreadyInPlace && report.bytesDownloaded == report.bytes && report.bytesFromCache == 0)
        let marker = try String(contentsOf: destination.appendingPathComponent(".modelreg-fetch.json"), encoding: .utf8)
        #expect(marker.contains(report.digest))
        let markerless = fixture.scratch.url("copy")
        try FileManager.default.copyItem(at: destination, to: markerless)
        try FileManager.default.removeItem(at: markerless.appendingPathComponent(".modelreg-fetch.json"))
        try expectSameTree(fixture.model, markerless)

        for arguments in [["--dest", destination.path], ["--dest", destination.path, "--verify"]] {
            let again = try fixture.fetch(arguments)
            try #require(again.status == 0, "\(again)")
            #expect(try again.json(FetchReportJSON.self).alreadyInPlace)
        }
        // A damaged file is caught by --verify and fetched again.
        let config = destination.appendingPathComponent("config.json")
        let original = try Data(contentsOf: config)
        try Data(original.reversed()).write(to: config)
        #expect(
            try fixture.fetch(["--dest", destination.path]).json(FetchReportJSON.self).alreadyInPlace,
            "sizes and marker only")
        let repaired = try fixture.fetch(["--dest", destination.path, "--verify"])
        #expect(try !repaired.json(FetchReportJSON.self).alreadyInPlace)
        #expect(repaired.stderr.contains("config.json hashes to"), "the replaced file is named: \(repaired.stderr)")
        #expect(try Data(contentsOf: config) == original)
        #expect(try fixture.leftovers().isEmpty)
    }

    /// Issue 15.2: a destination holding somebody's files, the working directory included, is refused
    /// (exit 7, naming --force) and left as it was; --force replaces it.
    @Test func aForeignNonEmptyDestinationIsRefusedUnlessForced() throws {
        let fixture = try Fixture()
        let work = fixture.scratch.url("work")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        try Data("my notes".utf8).write(to: work.appendingPathComponent("notes.txt"))
        for destination in [".", work.path] {
            let refused = try modelreg(
                ["fetch", "org/tiny@prod", "--dest", destination], environment: fixture.server.environment, in: work)
            #expect(
                refused.status == 7 && refused.stderr.hasPrefix("error: ") && refused.stderr.contains("--force")
                    && refused.stderr.contains("notes.txt"), "\(destination): \(refused)")
            #expect(
                try FileManager.default.contentsOfDirectory(atPath: work.path) == ["notes.txt"],
                "\(destination): nothing touched")
        }
        let forced = try modelreg(
            ["fetch", "org/tiny@prod", "--dest", ".", "--force"], environment: fixture.server.environment, in: work)
        try #require(forced.status == 0, "\(forced)")
        #expect(!FileManager.default.fileExists(atPath: work.appendingPathComponent("notes.txt").path))
        // Now it holds an earlier fetch: fetching again needs no --force.
        #expect(
            try modelreg(["fetch", "org/tiny@prod", "--dest", "."], environment: fixture.server.environment, in: work)
                .status == 0)
        try fixture.expectFetched(work)
    }

    @Test func aKilledFetchResumesWithoutDownloadingAgain() throws {
        let size = 192 << 20
        let fixture = try Fixture(bigFile: size)
        let destination = fixture.scratch.url("dest")
        let running = try CommandProcess(
            ["fetch", "org/tiny@prod", "--dest", destination.path], environment: fixture.server.environment)
        // Kill it once the big file is partly written.
        let deadline = Date().addingTimeInterval(60)
        var killedAt: Int64 = 0
        while Date() < deadline, killedAt == 0 {
            let partial =
                ((try? FileManager.default.contentsOfDirectory(atPath: destination.path)) ?? []).filter {
                    $0.hasPrefix(".modelreg-staging-")
                }
                .map { destination.appendingPathComponent($0).appendingPathComponent("weights-extra.bin").path }
                .compactMap { try? FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int64 }.first ?? 0
            if partial > 8 << 20, partial < Int64(size) {
                running.kill()
                killedAt = partial
            }
            usleep(2000)
        }
        _ = try running.wait()
        try #require(killedAt > 0, "the fetch finished before it could be interrupted")
        let visible = try FileManager.default.contentsOfDirectory(atPath: destination.path)
        #expect(
            visible.allSatisfy { $0.hasPrefix(".modelreg-staging-") },
            "nothing in place before the fetch completes: \(visible)")

        let resumed = try fixture.fetch(["--dest", destination.path])
        try #require(resumed.status == 0, "\(resumed)")
        let report = try resumed.json(FetchReportJSON.self)
        #expect(
            report.bytesResumed >= killedAt, "kept what the killed run wrote: \(report.bytesResumed) of \(killedAt)")
        #expect(report.bytesDownloaded + report.bytesResumed == report.bytes)
        try fixture.expectFetched(destination)
        #expect(try fixture.leftovers().isEmpty)
    }

    @Test func aCorruptedBlobIsRefusedAndTheDestinationUntouched() throws {
        let fixture = try Fixture()
        let weights = try Data(contentsOf: fixture.model.appendingPathComponent("model-00002-of-00002.safetensors"))
        let digest = Digest.of(weights)
        let blob = fixture.scratch.url("data/blobs/sha256/\(digest.hex.prefix(2))/\(digest.hex)")
        var corrupted = try Data(contentsOf: blob)
        corrupted[corrupted.count / 3] ^= 0x40
        try corrupted.write(to: blob)
        let destination = fixture.scratch.url("dest")
        try FileManager.default.createDirectory(at: destination, withIntermediateDirectories: true)
        try Data("keep me".utf8).write(to: destination.appendingPathComponent("old.txt"))

        let result = try fixture.fetch(["--dest", destination.path, "--force"])
        #expect(result.status == 5, "\(result)")
        #expect(result.stderr.contains(digest.description))
        #expect(try FileManager.default.contentsOfDirectory(atPath: destination.path) == ["old.txt"])
        #expect(try fixture.leftovers().isEmpty)
    }

    @Test func theNodeCacheIsLinkedNotDownloaded() throws {
        let fixture = try Fixture()
        let cache = fixture.scratch.url("node-cache")
        let first = try fixture.fetch(["--dest", fixture.scratch.url("pod-a").path, "--cache", cache.path])
        try #require(first.status == 0, "\(first)")
        let second = try fixture.fetch(["--dest", fixture.scratch.url("pod-b").path, "--cache", cache.path])
        try #require(second.status == 0, "\(second)")
        let report = try second.json(FetchReportJSON.self)
        #expect(report.bytesDownloaded == 0 && report.bytesFromCache == report.bytes)
        try fixture.expectFetched(fixture.scratch.url("pod-b"))
        let weights = fixture.scratch.url("pod-b/model-00001-of-00002.safetensors").path
        let links = try FileManager.default.attributesOfItem(atPath: weights)[.referenceCount] as? Int
        #expect(links == 3, "pod-a, pod-b and the cache share one inode")
    }

    /// A hostPath cache and an emptyDir destination are different mounts, where link(2) fails with EXDEV:
    /// the cache's files are then copied and checked, still without the network, and a corrupt one is fetched.
    @Test func aNodeCacheOnAnotherFilesystemIsCopiedAndChecked() throws {
        let fixture = try Fixture()
        let shm = URL(fileURLWithPath: "/dev/shm")
        func device(_ url: URL) throws -> UInt64? {
            (try FileManager.default.attributesOfFileSystem(forPath: url.path)[.systemNumber] as? NSNumber)?.uint64Value
        }
        guard FileManager.default.isWritableFile(atPath: shm.path), try device(shm) != device(fixture.scratch.root)
        else {
            print("skipped: /dev/shm is not a separate writable filesystem here, so no EXDEV can be produced")
            return
        }
        let cache = shm.appendingPathComponent("modelreg-node-cache-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: cache) }
        let first = try fixture.fetch(["--dest", fixture.scratch.url("pod-a").path, "--cache", cache.path])
        try #require(first.status == 0, "\(first)")
        let cached = try FileManager.default.subpathsOfDirectory(atPath: cache.path).filter { !$0.hasSuffix("sha256") }
        #expect(
            !cached.isEmpty && cached.allSatisfy { !$0.contains("/.") },
            "no temporary file is left in the cache: \(cached)")

        let second = try fixture.fetch(["--dest", fixture.scratch.url("pod-b").path, "--cache", cache.path])
        try #require(second.status == 0, "\(second)")
        let report = try second.json(FetchReportJSON.self)
        #expect(report.bytesDownloaded == 0 && report.bytesFromCache == report.bytes)
        try fixture.expectFetched(fixture.scratch.url("pod-b"))

        let weights = try Data(contentsOf: fixture.model.appendingPathComponent("model-00002-of-00002.safetensors"))
        let entry = cache.appendingPathComponent("sha256/\(Digest.of(weights).hex)")
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: entry.path)
        var corrupted = try Data(contentsOf: entry)
        corrupted[corrupted.count / 2] ^= 0x01
        try corrupted.write(to: entry)
        let third = try fixture.fetch(["--dest", fixture.scratch.url("pod-c").path, "--cache", cache.path])
        try #require(third.status == 0, "\(third)")
        #expect(try third.json(FetchReportJSON.self).bytesDownloaded == Int64(weights.count))
        try fixture.expectFetched(fixture.scratch.url("pod-c"))
        #expect(try Data(contentsOf: entry) == weights, "the damaged entry was replaced by the good download")
    }

    /// On one mount a cached file would be hard-linked: a same-size damaged one is hashed first, removed
    /// from the cache and downloaded, never linked in with exit 0 (issue 16.6).
    @Test func aDamagedNodeCacheFileIsNeverLinked() throws {
        let fixture = try Fixture()
        let cache = fixture.scratch.url("node-cache")
        try #require(
            try fixture.fetch(["--dest", fixture.scratch.url("pod-a").path, "--cache", cache.path]).status == 0)
        let weights = try Data(contentsOf: fixture.model.appendingPathComponent("model-00001-of-00002.safetensors"))
        let entry = cache.appendingPathComponent("sha256/\(Digest.of(weights).hex)")
        #expect(
            try FileManager.default.attributesOfItem(atPath: entry.path)[.posixPermissions] as? Int == 0o444,
            "shared files are read-only")
        var damaged = weights
        damaged[damaged.count / 2] ^= 0x01
        for verify in [false, true] {
            // A new inode, as a careless rewrite leaves it, so pod-a's linked copy stays as it was.
            try FileManager.default.removeItem(at: entry)
            try damaged.write(to: entry)
            let destination = fixture.scratch.url(verify ? "pod-c" : "pod-b")
            let fetched = try fixture.fetch(
                ["--dest", destination.path, "--cache", cache.path] + (verify ? ["--verify"] : []))
            try #require(fetched.status == 0, "\(fetched)")
            #expect(try fetched.json(FetchReportJSON.self).bytesDownloaded == Int64(weights.count), "verify \(verify)")
            try fixture.expectFetched(destination)
            #expect(try Data(contentsOf: entry) == weights, "the cache holds the good bytes again")
        }
    }

    @Test func theHFLayoutLoadsWithHuggingFaceHubOffline() throws {
        let fixture = try Fixture()
        let cacheRoot = fixture.scratch.url("hf-cache")
        let result = try fixture.fetch(["--dest", cacheRoot.path, "--layout", "hf"])
        try #require(result.status == 0, "\(result)")
        let script = """
            import os, sys, hashlib, json
            os.environ["HF_HUB_OFFLINE"] = "1"
            from huggingface_hub import snapshot_download
            path = snapshot_download("org/tiny", cache_dir=sys.argv[1], local_files_only=True)
            print(json.dumps({os.path.relpath(os.path.join(b, n), path): hashlib.sha256(open(os.path.join(b, n), "rb").read()).hexdigest()
                              for b, _, names in os.walk(path) for n in names}))
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, cacheRoot.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.runAlone()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0)
        let loaded = try JSONDecoder().decode([String: String].self, from: output)
        let expected = try snapshot(fixture.model).mapValues { Digest.of($0.0).hex }
        #expect(loaded == expected)
    }

    @Test func failuresExitWithTheDocumentedCodes() throws {
        let fixture = try Fixture()
        let destination = fixture.scratch.url("dest").path
        let cases: [([String], [String: String], Int32)] = [
            (["fetch", "org/tiny@canary", "--dest", destination], fixture.server.environment, 3),
            (
                ["fetch", "org/tiny@prod", "--dest", destination],
                ["MODELREG_URL": fixture.server.url, "MODELREG_TOKEN": "mrt_wrong"], 4
            ),
            (["fetch", "org/tiny@prod", "--dest", destination, "--layout", "zip"], fixture.server.environment, 64),
            (
                ["fetch", "org/tiny@prod", "--dest", destination, "--timeout", "1s"],
                ["MODELREG_URL": "http://127.0.0.1:9"], 6
            ),
        ]
        for (arguments, environment, status) in cases {
            let result = try modelreg(arguments, environment: environment)
            #expect(result.status == status, "\(arguments): \(result)")
        }
        #expect(!FileManager.default.fileExists(atPath: destination))
    }
}

extension FetchTests {
    /// The registry is down when the init container starts and comes back: fetch retries until it can.
    @Test func networkFailuresAreRetriedUntilTheRegistryAnswers() throws {
        let fixture = try Fixture()
        let port = try #require(fixture.server.url.split(separator: ":").last.map(String.init))
        fixture.server.stop()
        let destination = fixture.scratch.url("dest")
        let running = try CommandProcess(
            ["fetch", "org/tiny@prod", "--dest", destination.path, "--timeout", "60s"],
            environment: fixture.server.environment
        )
        usleep(1_500_000)
        let restarted = try ServerProcess(data: fixture.scratch.url("data"), extraArguments: ["--port", port])
        let result = try running.wait()
        #expect(result.status == 0, "\(result)")
        #expect(result.stderr.contains("network failure, retrying"))
        try fixture.expectFetched(destination)
        restarted.stop()
    }
}
