import Foundation
import ModelRegistryCore
import TestServers
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
                try FileManager.default.createDirectory(
                    at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try bytes.write(to: url)
            }
            let push = try modelreg(["push", model.path, "m:1", "--no-inspect"], environment: server.environment)
            try #require(push.status == 0, "\(push)")
        }

        /// Zeros with a mark every 4 KiB: compressible by nothing in the path, distinct per seed.
        static func marked(_ size: Int, seed: UInt8) -> Data {
            var bytes = [UInt8](repeating: 0, count: size)
            for index in stride(from: 0, to: size, by: 4096) {
                bytes[index] = UInt8(truncatingIfNeeded: index / 4096) &+ seed
            }
            return Data(bytes)
        }

        /// A proxy that interrupts what the server sends after `bytes` a connection, and the client
        /// environment that goes through it.
        func behind(_ action: InterruptingProxy.Action, after bytes: Int) throws -> (
            InterruptingProxy, [String: String]
        ) {
            let proxy = try InterruptingProxy(to: server.url, direction: .toClient, after: bytes, action: action)
            return (proxy, server.environment.merging(["MODELREG_URL": proxy.url]) { $1 })
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
        return lines.last?.hasPrefix("error: ") == true
            && lines.filter { $0.lowercased().contains("error:") }.count == 1
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
                try modelreg(
                    [command, "m:1", "--dest", destination.path] + (command == "fetch" ? ["--timeout", "20s"] : []),
                    environment: registry.server.environment)
            }
            #expect(result.status == 5, "\(command): \(result)")
            #expect(seconds < 15, "\(command) took \(seconds) s to give up")
            #expect(Self.endsWithOneErrorLine(result.stderr), "\(command): \(result.stderr)")
            #expect(
                !FileManager.default.fileExists(atPath: destination.path),
                "\(command): the destination it created is gone")
            let (leftovers, strays) = (try registry.leftovers(), try registry.strays(besides: "dest"))
            #expect(leftovers.isEmpty && strays.isEmpty, "\(command): \(leftovers) \(strays)")
        }
    }

    /// 16.2: top-level names of one character, a file and a directory's, placed flat.
    @Test func oneCharacterNamesArePlaced() throws {
        let registry = try Registry(
            extra: ["x": Data("x".utf8), "a/config.json": Data("{}".utf8), "b": Data()], large: false)
        let destination = registry.scratch.url("dest")
        let cache = registry.scratch.url("cache")
        let result = try modelreg(
            ["fetch", "m:1", "--dest", destination.path, "--cache", cache.path],
            environment: registry.server.environment)
        try #require(result.status == 0, "\(result)")
        // A second pod on the node takes the files from the cache.
        let second = registry.scratch.url("second")
        let cached = try modelreg(
            ["fetch", "m:1", "--dest", second.path, "--cache", cache.path, "--json"],
            environment: registry.server.environment)
        try #require(cached.status == 0, "\(cached)")
        #expect(try cached.json(FetchReportJSON.self).bytesFromCache > 0, "\(cached.stdout)")
        for placed in [destination, second] {
            try FileManager.default.removeItem(at: placed.appendingPathComponent(".modelreg-fetch.json"))
            try expectSameTree(registry.model, placed)
        }
    }

    /// 16.5: names in several scripts, a path over the 100 bytes a ustar header holds and a long name in the
    /// `hf` layout's blob-linked snapshot, all of which need pax records, are placed by the real binary whatever
    /// the process locale: none, `C`, `C.UTF-8`.
    @Test func nonASCIIPathsArePlacedInAnyLocale() throws {
        let names = [
            "日本語/重み.bin", "Ελληνικά/βάρη.bin", "русский/веса.bin", "עברית/משקלים.bin", "हिन्दी/भार.bin", "emoji-😀/🧠.bin",
            "deep/" + String(repeating: "ü", count: 60) + "/" + String(repeating: "é", count: 30) + ".bin",
        ]
        var files: [String: Data] = [:]
        for (index, name) in names.enumerated() { files[name] = Data("file \(index): \(name)".utf8) }
        let registry = try Registry(extra: files, large: false)
        let base = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"].merging(
            registry.server.environment
        ) { $1 }
        for (label, locale) in [("no locale", [:]), ("C", ["LC_ALL": "C"]), ("C.UTF-8", ["LC_ALL": "C.UTF-8"])]
            as [(String, [String: String])]
        {
            for layout in ["flat", "hf"] {
                let destination = registry.scratch.url("\(layout)-\(label)")
                let result = try CommandProcess(
                    ["fetch", "m:1", "--dest", destination.path, "--layout", layout],
                    environment: base.merging(locale) { $1 }, inheritEnvironment: false
                ).wait()
                try #require(result.status == 0, "\(label), \(layout): \(result)")
                let root: URL
                if layout == "flat" {
                    root = destination
                } else {
                    let snapshots = destination.appendingPathComponent("models--m/snapshots")
                    root = snapshots.appendingPathComponent(
                        try #require(try FileManager.default.contentsOfDirectory(atPath: snapshots.path).first))
                }
                for (name, bytes) in files {
                    #expect(
                        try Data(contentsOf: root.appendingPathComponent(name)) == bytes, "\(label), \(layout): \(name)"
                    )
                }
            }
        }
    }

    /// 16.10: an image that spells a manifest's NFC path in NFD is refused (exit 5) and leaves nothing.
    @Test func anNFDSpellingOfAManifestPathIsRefused() throws {
        let scratch = try Scratch()
        let name = "caf\u{E9}/gew\u{FC}rz.bin"
        let bytes = Data("weights".utf8)
        let manifest = Manifest(
            format: .other,
            files: [ManifestFile(path: try ManifestPath(name), digest: Digest.of(bytes), size: Int64(bytes.count))])
        let manifestBytes = manifest.canonicalJSON()
        let headers = [
            "Modelreg-Digest": Digest.of(manifestBytes).description, "Modelreg-Version": "1",
            "Modelreg-Variant": "default",
        ]
        let script = """
            import io, sys, tarfile, unicodedata
            name = unicodedata.normalize("NFD", sys.argv[2])
            with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as tar:
                folder = tarfile.TarInfo(name.split("/")[0]); folder.type = tarfile.DIRTYPE; folder.mode = 0o755
                tar.addfile(folder)
                info = tarfile.TarInfo(name); info.size = 7; info.mode = 0o644
                tar.addfile(info, io.BytesIO(b"weights"))
            """
        let archive = scratch.url("nfd.tar")
        let (status, output) = try shell("python3 -c '\(script)' '\(archive.path)' '\(name)'")
        try #require(status == 0, "\(output)")
        let fake = try FakeRegistry(
            manifest: manifestBytes, headers: headers, image: .bytes(try [UInt8](Data(contentsOf: archive))))
        defer { fake.close() }
        let destination = scratch.url("models")
        _ = try Self.fetchRefused(from: fake, into: destination)
        let left = (try? FileManager.default.contentsOfDirectory(atPath: destination.path)) ?? []
        #expect(left.isEmpty, "nothing placed, no staging: \(left)")
    }

    /// 16.3: the image body stops arriving mid-way; `--timeout` bounds the command, and a rerun resumes.
    @Test func aStalledImageEndsAtTheTimeoutAndResumes() throws {
        let registry = try Registry()
        let (proxy, environment) = try registry.behind(.stall, after: 12 << 20)
        defer { proxy.close() }
        let destination = registry.scratch.url("dest")
        let (stalled, seconds) = try Self.elapsed {
            try modelreg(["fetch", "m:1", "--dest", destination.path, "--timeout", "6s"], environment: environment)
        }
        #expect(stalled.status == 6, "\(stalled)")
        #expect(stalled.stderr.contains("did not finish within --timeout (6 s)"), "\(stalled.stderr)")
        #expect(seconds < 16, "the 6 s timeout ended the fetch after \(seconds) s")
        #expect(proxy.interrupted)
        let staged = try FileManager.default.contentsOfDirectory(atPath: destination.path)
        #expect(
            staged.count == 1 && staged.allSatisfy { $0.hasPrefix(".modelreg-staging-") },
            "kept to resume, nothing visible: \(staged)")

        let resumed = try modelreg(["fetch", "m:1", "--dest", destination.path, "--json"], environment: environment)
        try #require(resumed.status == 0, "\(resumed)")
        // More than a-first.bin's 4 MiB: the half-written b-second.bin was continued, not downloaded again.
        #expect(try resumed.json(FetchReportJSON.self).bytesResumed > 4 << 20, "\(resumed.stdout)")
        try FileManager.default.removeItem(at: destination.appendingPathComponent(".modelreg-fetch.json"))
        try expectSameTree(registry.model, destination)
    }

    /// 16.3: the manifest's answer stalls: the timeout still holds.
    @Test func aStalledManifestEndsAtTheTimeout() throws {
        let registry = try Registry(extra: ["config.json": Data("{}".utf8)], large: false)
        let (proxy, environment) = try registry.behind(.stall, after: 150)
        defer { proxy.close() }
        let destination = registry.scratch.url("dest")
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
        let (proxy, environment) = try registry.behind(.cut, after: bytes)
        defer { proxy.close() }
        let destination = registry.scratch.url("dest")
        let result = try modelreg(
            ["fetch", "m:1", "--dest", destination.path, "--timeout", "60s"], environment: environment)
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
        let (proxy, environment) = try registry.behind(.cut, after: bytes)
        defer { proxy.close() }
        let model = registry.scratch.url("second")
        try TestModel.write(to: model, seed: 7)
        let result = try modelreg(["push", model.path, "m:2", "--no-inspect"], environment: environment)
        #expect(result.status == 0 || (result.status == 6 && Self.endsWithOneErrorLine(result.stderr)), "\(result)")
        if result.status != 0 {
            let again = try modelreg(
                ["push", model.path, "m:2", "--no-inspect"], environment: registry.server.environment)
            #expect(again.status == 0, "\(again)")
        }
        let pulled = registry.scratch.url("pulled")
        #expect(
            try modelreg(["pull", "m:2", "--dest", pulled.path], environment: registry.server.environment).status == 0)
        try expectSameTree(model, pulled)
    }
}

/// The real `fetch` against `FakeRegistry`: a genuine manifest, then hostile archives, a stalled or a cut
/// image. Each refusal exits 5 at once, a stall or an endless cut exits 6 at the deadline; nothing is ever
/// written outside the destination, a destination holding an earlier fetch keeps it, and no staging
/// directory is left but the one a stalled download can resume from.
extension FetchFaultTests {
    static let config = Array(#"{"model_type":"llama"}"#.utf8)
    static let weights = [UInt8](repeating: 7, count: 64 << 10)

    static let generator = """
        import io, os, sys, tarfile
        out, victim = sys.argv[1], sys.argv[2]
        config = b'{"model_type":"llama"}'
        weights = bytes([7]) * (64 << 10)
        def archive(name, members, form=tarfile.USTAR_FORMAT):
            with tarfile.open(os.path.join(out, name), "w", format=form) as tar:
                for info, data in members:
                    tar.addfile(info, io.BytesIO(data) if data is not None else None)
        def file(name, data):
            info = tarfile.TarInfo(name); info.size = len(data); info.mode = 0o644
            return info, data
        def special(name, kind, target=""):
            info = tarfile.TarInfo(name); info.type = kind; info.linkname = target; info.mode = 0o755
            return info, None
        folder = special("weights", tarfile.DIRTYPE)
        good = [file("config.json", config), folder, file("weights/a.bin", weights)]
        archive("good", good)
        archive("absolute", [file(victim + "/absolute", config)], tarfile.PAX_FORMAT)
        archive("dotdot", [file("../victim-dotdot", config)])
        archive("symlink", [special("config.json", tarfile.SYMTYPE, victim)])
        archive("symlinked-directory", [file("config.json", config), special("weights", tarfile.SYMTYPE, victim), file("weights/a.bin", weights)])
        archive("hardlink", [special("config.json", tarfile.LNKTYPE, "/etc/passwd")])
        archive("device", [special("config.json", tarfile.CHRTYPE)])
        # First, since a ranged request never reads past the entries the variant has.
        archive("extra", [file("a-extra.bin", b"x")] + good)
        archive("altered", [file("config.json", config.replace(b"llama", b"llamb")), folder, file("weights/a.bin", weights)])
        archive("file-first", [file("config.json", config), file("weights/a.bin", weights), folder])
        with open(os.path.join(out, "good"), "rb") as f:
            whole = f.read()
        with open(os.path.join(out, "truncated"), "wb") as f:
            f.write(whole[:1500])
        with open(os.path.join(out, "garbage"), "wb") as f:
            f.write(os.urandom(4096))
        """

    /// The generator's archives in `archives/` of `scratch` (the attacks aim at its `victim`).
    static func makeArchives(in scratch: Scratch) throws {
        let archives = scratch.url("archives")
        try FileManager.default.createDirectory(at: archives, withIntermediateDirectories: true)
        let (status, output) = try shell(
            "python3 -c '\(generator.replacingOccurrences(of: "'", with: "'\\''"))' '\(archives.path)' '\(scratch.url("victim").path)'"
        )
        try #require(status == 0, "\(output)")
    }

    /// The honest archive of the genuine manifest's files.
    static func goodArchive(in scratch: Scratch) throws -> [UInt8] {
        try makeArchives(in: scratch)
        return try [UInt8](Data(contentsOf: scratch.url("archives").appendingPathComponent("good")))
    }

    /// `fetch` of m:1 from `fake` into `destination`, expected to be refused as an integrity error (exit 5) in
    /// one `error:` line.
    static func fetchRefused(from fake: FakeRegistry, into destination: URL) throws -> CommandResult {
        let result = try modelreg(
            ["fetch", "m:1", "--dest", destination.path, "--timeout", "20s"],
            environment: ["MODELREG_URL": fake.url, "MODELREG_TOKEN": "mrt_x"])
        #expect(result.status == 5 && endsWithOneErrorLine(result.stderr), "\(result)")
        return result
    }

    /// The manifest the fake serves, its bytes and the headers naming it.
    static func genuineManifest() throws -> ([UInt8], [String: String]) {
        let manifest = Manifest(
            format: .other,
            files: [
                ManifestFile(
                    path: try ManifestPath("config.json"), digest: Digest.of(config), size: Int64(config.count)),
                ManifestFile(
                    path: try ManifestPath("weights/a.bin"), digest: Digest.of(weights), size: Int64(weights.count)),
            ])
        let bytes = manifest.canonicalJSON()
        return (
            bytes,
            ["Modelreg-Digest": Digest.of(bytes).description, "Modelreg-Version": "1", "Modelreg-Variant": "default"]
        )
    }

    @Test func hostileImagesFromAFakeRegistryAreRefusedAndContained() throws {
        let scratch = try Scratch()
        let archives = scratch.url("archives")
        let victim = scratch.url("victim")
        try Self.makeArchives(in: scratch)
        let (manifest, headers) = try Self.genuineManifest()
        // An earlier fetch of another variant: a refused one must leave it as it is.
        let destination = scratch.url("models")
        try FileManager.default.createDirectory(at: destination, withIntermediateDirectories: true)
        let earlier = Data(
            #"{"layout":"flat","manifest":"sha256:\#(String(repeating: "0", count: 64))","model":"m","variant":"default","version":"0"}"#
                .utf8)
        try earlier.write(to: destination.appendingPathComponent(".modelreg-fetch.json"))
        try Data("old weights".utf8).write(to: destination.appendingPathComponent("old.bin"))
        let before = try snapshot(destination)

        for name in [
            "absolute", "dotdot", "symlink", "symlinked-directory", "hardlink", "device", "extra", "altered",
            "file-first", "truncated", "garbage",
        ] {
            let fake = try FakeRegistry(
                manifest: manifest, headers: headers,
                image: .bytes(try [UInt8](Data(contentsOf: archives.appendingPathComponent(name)))))
            defer { fake.close() }
            let (result, seconds) = try Self.elapsed {
                try modelreg(
                    ["fetch", "m:1", "--dest", destination.path, "--timeout", "20s"],
                    environment: ["MODELREG_URL": fake.url, "MODELREG_TOKEN": "mrt_x"])
            }
            #expect(result.status == 5 && Self.endsWithOneErrorLine(result.stderr), "\(name): \(result)")
            #expect(seconds < 10, "\(name): \(seconds) s")
            let after = try snapshot(destination)
            #expect(
                after.keys.sorted() == before.keys.sorted() && after.allSatisfy { before[$0.key]?.0 == $0.value.0 },
                "\(name): the earlier fetch stays")
            let staging = try FileManager.default.contentsOfDirectory(atPath: destination.path).filter {
                $0.hasPrefix(".modelreg-") && $0 != ".modelreg-fetch.json"
            }
            #expect(staging.isEmpty, "\(name): \(staging)")
            #expect(
                !FileManager.default.fileExists(atPath: victim.path)
                    && !FileManager.default.fileExists(atPath: scratch.url("victim-dotdot").path), "\(name)")
            #expect(
                try FileManager.default.contentsOfDirectory(atPath: scratch.root.path).sorted() == [
                    "archives", "models",
                ], "\(name): nothing written beside")
        }

        // The same files, honestly archived, are placed: the refusals above are about the attacks.
        let honest = try FakeRegistry(
            manifest: manifest, headers: headers,
            image: .bytes(try [UInt8](Data(contentsOf: archives.appendingPathComponent("good")))))
        defer { honest.close() }
        let placed = try modelreg(
            ["fetch", "m:1", "--dest", destination.path, "--timeout", "20s"],
            environment: ["MODELREG_URL": honest.url, "MODELREG_TOKEN": "mrt_x"])
        #expect(placed.status == 0, "\(placed)")
        #expect(try Data(contentsOf: destination.appendingPathComponent("weights/a.bin")) == Data(Self.weights))
    }

    /// A registry that answers a run's `Range` with other bytes of the image, and says so in `Content-Range`:
    /// refused before a byte is extracted, whether the body has a length (read on a connection of fetch's
    /// own) or is chunked (read through AsyncHTTPClient).
    @Test(arguments: [false, true])
    func anImageRangeAnsweredFromTheWrongPlaceIsRefused(chunked: Bool) throws {
        let scratch = try Scratch()
        let good = try Self.goodArchive(in: scratch)
        let (manifest, headers) = try Self.genuineManifest()
        let fake = try FakeRegistry(
            manifest: manifest, headers: headers, image: .shifted(good, by: 512, chunked: chunked))
        defer { fake.close() }
        let destination = scratch.url("models")
        let result = try Self.fetchRefused(from: fake, into: destination)
        #expect(result.stderr.contains("starting at 512\n"), "\(result.stderr)")
        let visible = (try? FileManager.default.contentsOfDirectory(atPath: destination.path)) ?? []
        #expect(visible.allSatisfy { $0.hasPrefix(".modelreg-staging-") }, "nothing placed: \(visible)")
    }

    @Test(arguments: ["stall", "cut"])
    func aStalledOrEndlesslyCutImageEndsAtTheDeadline(_ fault: String) throws {
        let scratch = try Scratch()
        let good = try Self.goodArchive(in: scratch)
        let (manifest, headers) = try Self.genuineManifest()
        let fake = try FakeRegistry(
            manifest: manifest, headers: headers,
            image: fault == "stall" ? .stall(good, after: 5000) : .cut(good, after: 5000))
        defer { fake.close() }
        let destination = scratch.url("models")
        let (result, seconds) = try Self.elapsed {
            try modelreg(
                ["fetch", "m:1", "--dest", destination.path, "--timeout", "5s"],
                environment: ["MODELREG_URL": fake.url, "MODELREG_TOKEN": "mrt_x"])
        }
        #expect(result.status == 6 && Self.endsWithOneErrorLine(result.stderr), "\(fault): \(result)")
        #expect(seconds < 12, "\(fault): the 5 s deadline ended it after \(seconds) s")
        let visible = try FileManager.default.contentsOfDirectory(atPath: destination.path)
        #expect(
            visible.allSatisfy { $0.hasPrefix(".modelreg-staging-") },
            "\(fault): only what a rerun resumes from: \(visible)")
    }
}
