import Foundation
import ModelRegistryCore
import Synchronization
import Testing

/// Many real clients at once against one server: pushes of models that share most of their blobs race to
/// upload the same bytes, while other clients pull and verify. Nothing may fail, each blob is stored once,
/// and every pull is the pushed tree byte for byte.
@Suite(.serialized) struct ConcurrencyTests {
    static let pushers = 10
    static let pullers = 6

    @Test func sixteenClientsPushingSharedBlobsAndPullingAtOnce() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        let env = server.environment
        let pool = try sharedFiles(in: scratch.url("pool"))
        // Eight models of one config, three of six shared shards each and a file of their own; pushers 8 and
        // 9 push the same trees as 0 and 1 to the same references, which must publish once.
        let models = try (0..<8).map { index in
            try model(
                scratch.url("models/\(index)"), pool: pool, shards: [index % 6, (index + 1) % 6, (index + 3) % 6],
                own: index)
        }
        let pulled = try (0..<2).map { index in
            try model(scratch.url("models/pulled-\(index)"), pool: pool, shards: [index, index + 2], own: 100 + index)
        }
        for (index, tree) in pulled.enumerated() {
            let push = try modelreg(["push", tree.path, "p:\(index)", "--quiet"], environment: env)
            try #require(push.status == 0, "\(push)")
        }

        let started = Date()
        let pushing = Atomic<Int>(Self.pushers)
        let failures = Mutex<[String]>([])
        let done = DispatchGroup()
        for index in 0..<Self.pushers {
            done.enter()
            Thread.detachNewThread {
                defer {
                    pushing.subtract(1, ordering: .sequentiallyConsistent)
                    done.leave()
                }
                let result = Result {
                    try modelreg(["push", models[index % 8].path, "c:\(index % 8)", "--quiet"], environment: env)
                }
                if case .success(let output) = result, output.status == 0 { return }
                failures.withLock { $0.append("push \(index): \(result)") }
            }
        }
        // Pullers keep pulling the published models while any push runs, each pull into a new directory.
        let pulls = Atomic<Int>(0)
        for index in 0..<Self.pullers {
            done.enter()
            Thread.detachNewThread {
                defer { done.leave() }
                var round = 0
                repeat {
                    let which = (index + round) % pulled.count
                    let dest = scratch.url("dest/\(index)-\(round)")
                    let result = Result {
                        try modelreg(["pull", "p:\(which)", "--dest", dest.path, "--quiet"], environment: env)
                    }
                    if case .success(let output) = result, output.status == 0, sameTree(pulled[which], dest) {
                        pulls.add(1, ordering: .relaxed)
                    } else {
                        failures.withLock { $0.append("pull \(index)-\(round) of p:\(which): \(result)") }
                    }
                    try? FileManager.default.removeItem(at: dest)
                    round += 1
                } while pushing.load(ordering: .sequentiallyConsistent) > 0
            }
        }
        done.wait()
        let seconds = Date().timeIntervalSince(started)
        let problems = failures.withLock { $0 }
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
        print(
            "concurrency: \(Self.pushers) pushes and \(pulls.load(ordering: .relaxed)) verified pulls by \(Self.pushers + Self.pullers) clients at once in \(String(format: "%.1f", seconds)) s"
        )

        // Each distinct content is one file in the blob store, and no upload is left behind.
        let expected = try Set(
            (models + pulled).flatMap { tree in try snapshot(tree).values.map { Digest.of(Array($0.0)).hex } })
        let stored = regularFiles(server.data.appendingPathComponent("blobs/sha256")).map {
            String($0.split(separator: "/").last ?? "")
        }
        #expect(stored.count == expected.count, "\(stored.count) blob files for \(expected.count) distinct contents")
        #expect(Set(stored) == expected)
        #expect(regularFiles(server.data.appendingPathComponent("uploads")).isEmpty)
        for (index, tree) in models.enumerated() {
            let dest = scratch.url("final/\(index)")
            let pull = try modelreg(["pull", "c:\(index)", "--dest", dest.path, "--quiet"], environment: env)
            try #require(pull.status == 0, "\(pull)")
            try expectSameTree(tree, dest)
        }
        let verify = try modelreg(["verify"], environment: env)
        #expect(verify.status == 0, "\(verify)")
        server.stop()
    }

    /// Six 4 MiB shards of random bytes that the models share.
    func sharedFiles(in root: URL) throws -> [URL] {
        try randomModel(root, files: 6, size: 4 << 20)
        return (0..<6).map { root.appendingPathComponent("part-\($0).bin") }
    }

    func model(_ root: URL, pool: [URL], shards: [Int], own: Int) throws -> URL {
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        try Data(#"{"model_type":"shared"}"#.utf8).write(to: root.appendingPathComponent("config.json"))
        for shard in shards {
            try FileManager.default.copyItem(at: pool[shard], to: root.appendingPathComponent("shard-\(shard).bin"))
        }
        let random = try #require(FileHandle(forReadingAtPath: "/dev/urandom"))
        defer { try? random.close() }
        try random.readData(ofLength: 1 << 20).write(to: root.appendingPathComponent("own-\(own).bin"))
        return root
    }
}

/// Whether two trees hold the same files with the same bytes, for threads that cannot record expectations.
func sameTree(_ a: URL, _ b: URL) -> Bool {
    guard let left = try? snapshot(a), let right = try? snapshot(b), left.keys.sorted() == right.keys.sorted() else {
        return false
    }
    return left.allSatisfy { path, file in right[path]?.0 == file.0 && right[path]?.1 == file.1 }
}
