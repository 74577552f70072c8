import Foundation
import ModelRegistryCore
import Testing

/// `fetch` and `pull` when the registry or the network misbehaves: wrong bytes, a body that stalls or is
/// cut, names that tripped the extraction. Each ends within its bound with its documented exit code, writes
/// nothing outside the destination, and leaves a staging directory only where a rerun can resume from it.
@Suite(.serialized) struct FetchFaultTests {
    /// A registry holding `m:1`: a 4 MiB file followed (in image order) by a 32 MiB one, and `extra` files.
    struct Registry {
        let scratch: Scratch
        let server: ServerProcess
        let model: URL

        init(extra: [String: Data] = [:], large: Bool = true) throws {
            scratch = try Scratch()
            server = try ServerProcess(data: scratch.url("data"))
            model = scratch.url("model")
            try FileManager.default.createDirectory(at: model, withIntermediateDirectories: true)
            var files = extra
            if large {
                files["a-first.bin"] = Self.marked(4 << 20, seed: 1)
                files["b-second.bin"] = Self.marked(32 << 20, seed: 2)
            }
            for (path, bytes) in files {
                let url = model.appendingPathComponent(path)
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try bytes.write(to: url)
            }
            let push = try modelreg(["push", model.path, "m:1", "--no-inspect"], environment: server.environment)
            try #require(push.status == 0, "\(push)")
        }

        /// Zeros with a mark every 4 KiB: compressible by nothing in the path, distinct per seed.
        static func marked(_ size: Int, seed: UInt8) -> Data {
            var bytes = [UInt8](repeating: 0, count: size)
            for index in stride(from: 0, to: size, by: 4096) { bytes[index] = UInt8(truncatingIfNeeded: index / 4096) &+ seed }
            return Data(bytes)
        }

        func blob(_ path: String) throws -> URL {
            let digest = Digest.of(try Data(contentsOf: model.appendingPathComponent(path)))
            return scratch.url("data/blobs/sha256/\(digest.hex.prefix(2))/\(digest.hex)")
        }

        /// This tool's scratch names (staging directories, journals, parts) anywhere outside the server's data.
        func leftovers() throws -> [String] {
            try FileManager.default.subpathsOfDirectory(atPath: scratch.root.path).filter { path in
                !path.hasPrefix("data/") && (path.split(separator: "/").last ?? "").hasPrefix(".modelreg-")
                    && !path.hasSuffix(".modelreg-fetch.json")
            }
        }

        /// What the scratch directory holds apart from the server's data, the model and the destination:
        /// anything here was written outside the destination.
        func strays(besides destination: String) throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: scratch.root.path).filter {
                !["data", "model", "cache", destination].contains($0) && !$0.hasPrefix("server-")
            }
        }
    }

    /// One `error:` line, the last one; the progress lines before it are not errors.
    static func endsWithOneErrorLine(_ stderr: String) -> Bool {
        let lines = stderr.split(separator: "\n")
        return lines.last?.hasPrefix("error: ") == true && lines.filter { $0.lowercased().contains("error:") }.count == 1
    }

    static func elapsed(_ body: () throws -> CommandResult) rethrows -> (CommandResult, Double) {
        let start = Date()
        let result = try body()
        return (result, Date().timeIntervalSince(start))
    }

    /// 16.1: the extractor refuses the first file; the download of the rest must end with it, not block.
    @Test func aRefusedFileEndsTheWholeTransferAtOnce() throws {
        let registry = try Registry()
        let blob = try registry.blob("a-first.bin")
        var bytes = try Data(contentsOf: blob)
        bytes[bytes.count / 2] ^= 0x01
        try bytes.write(to: blob)
        let destination = registry.scratch.url("dest")

        for command in ["fetch", "pull"] {
            let (result, seconds) = try Self.elapsed {
                try modelreg([command, "m:1", "--dest", destination.path] + (command == "fetch" ? ["--timeout", "20s"] : []), environment: registry.server.environment)
            }
            #expect(result.status == 5, "\(command): \(result)")
            #expect(seconds < 15, "\(command) took \(seconds) s to give up")
            #expect(Self.endsWithOneErrorLine(result.stderr), "\(command): \(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: destination.path), "\(command): the destination it created is gone")
            let (leftovers, strays) = (try registry.leftovers(), try registry.strays(besides: "dest"))
            #expect(leftovers.isEmpty && strays.isEmpty, "\(command): \(leftovers) \(strays)")
        }
    }

    /// 16.2: top-level names of one character, a file and a directory's, placed flat.
    @Test func oneCharacterNamesArePlaced() throws {
        let registry = try Registry(extra: ["x": Data("x".utf8), "a/config.json": Data("{}".utf8), "b": Data()], large: false)
        let destination = registry.scratch.url("dest")
        let result = try modelreg(["fetch", "m:1", "--dest", destination.path], environment: registry.server.environment)
        try #require(result.status == 0, "\(result)")
        try FileManager.default.removeItem(at: destination.appendingPathComponent(".modelreg-fetch.json"))
        try expectSameTree(registry.model, destination)
    }

    /// 16.3: the image body stops arriving mid-way; `--timeout` bounds the command, and a rerun resumes.
    @Test func aStalledImageEndsAtTheTimeoutAndResumes() throws {
        let registry = try Registry()
        let proxy = try InterruptingProxy(to: registry.server.url, direction: .toClient, after: 12 << 20, action: .stall)
        defer { proxy.close() }
        let destination = registry.scratch.url("dest")
        var environment = registry.server.environment
        environment["MODELREG_URL"] = proxy.url
        let (stalled, seconds) = try Self.elapsed {
            try modelreg(["fetch", "m:1", "--dest", destination.path, "--timeout", "6s"], environment: environment)
        }
        #expect(stalled.status == 6, "\(stalled)")
        #expect(stalled.stderr.contains("did not finish within --timeout (6 s)"), "\(stalled.stderr)")
        #expect(seconds < 16, "the 6 s timeout ended the fetch after \(seconds) s")
        #expect(proxy.interrupted)
        let staged = try FileManager.default.contentsOfDirectory(atPath: destination.path)
        #expect(staged.count == 1 && staged.allSatisfy { $0.hasPrefix(".modelreg-staging-") }, "kept to resume, nothing visible: \(staged)")

        let resumed = try modelreg(["fetch", "m:1", "--dest", destination.path, "--json"], environment: environment)
        try #require(resumed.status == 0, "\(resumed)")
        #expect(try resumed.json(FetchReportJSON.self).bytesResumed > 0, "\(resumed.stdout)")
        try FileManager.default.removeItem(at: destination.appendingPathComponent(".modelreg-fetch.json"))
        try expectSameTree(registry.model, destination)
    }

    /// 16.3: the manifest's answer stalls: the timeout still holds.
    @Test func aStalledManifestEndsAtTheTimeout() throws {
        let registry = try Registry(extra: ["config.json": Data("{}".utf8)], large: false)
        let proxy = try InterruptingProxy(to: registry.server.url, direction: .toClient, after: 150, action: .stall)
        defer { proxy.close() }
        let destination = registry.scratch.url("dest")
        var environment = registry.server.environment
        environment["MODELREG_URL"] = proxy.url
        let (result, seconds) = try Self.elapsed {
            try modelreg(["fetch", "m:1", "--dest", destination.path, "--timeout", "4s"], environment: environment)
        }
        #expect(result.status == 6 && Self.endsWithOneErrorLine(result.stderr), "\(result)")
        #expect(seconds < 14, "the 4 s timeout ended the fetch after \(seconds) s")
        #expect(!FileManager.default.fileExists(atPath: destination.path))
    }

    /// 16.4: a connection cut in the middle of a body is retried, for the manifest and the image alike.
    @Test(arguments: [300, 6 << 20])
    func aCutBodyIsRetried(after bytes: Int) throws {
        let registry = try Registry()
        let proxy = try InterruptingProxy(to: registry.server.url, direction: .toClient, after: bytes, action: .cut)
        defer { proxy.close() }
        let destination = registry.scratch.url("dest")
        var environment = registry.server.environment
        environment["MODELREG_URL"] = proxy.url
        let result = try modelreg(["fetch", "m:1", "--dest", destination.path, "--timeout", "60s"], environment: environment)
        #expect(result.status == 0, "\(result)")
        #expect(proxy.interrupted)
        try FileManager.default.removeItem(at: destination.appendingPathComponent(".modelreg-fetch.json"))
        try expectSameTree(registry.model, destination)
    }

    /// 16.4: the answers `push` reads are cut; it retries what can be repeated, and otherwise fails as a
    /// network failure with one `error:` line (exit 6), never with a bare NIO error.
    @Test(arguments: [100, 400, 900])
    func aPushWhoseAnswerIsCutRetriesOrSaysSo(after bytes: Int) throws {
        let registry = try Registry(extra: ["config.json": Data("{}".utf8)], large: false)
        let proxy = try InterruptingProxy(to: registry.server.url, direction: .toClient, after: bytes, action: .cut)
        defer { proxy.close() }
        let model = registry.scratch.url("second")
        try TestModel.write(to: model, seed: 7)
        var environment = registry.server.environment
        environment["MODELREG_URL"] = proxy.url
        let result = try modelreg(["push", model.path, "m:2", "--no-inspect"], environment: environment)
        #expect(result.status == 0 || (result.status == 6 && Self.endsWithOneErrorLine(result.stderr)), "\(result)")
        if result.status != 0 {
            let again = try modelreg(["push", model.path, "m:2", "--no-inspect"], environment: registry.server.environment)
            #expect(again.status == 0, "\(again)")
        }
        let pulled = registry.scratch.url("pulled")
        #expect(try modelreg(["pull", "m:2", "--dest", pulled.path], environment: registry.server.environment).status == 0)
        try expectSameTree(model, pulled)
    }
}
