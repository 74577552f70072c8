import AsyncHTTPClient
import Foundation
import GRDB
import ModelRegistryCore
import NIOCore
import NIOHTTP1
import RegistryAPI
import Testing

/// Raw HTTP against the real server, for inputs the CLI would never send.
struct RawHTTP {
    let server: ServerProcess

    func send(
        _ method: HTTPMethod, _ path: String, body: [UInt8]? = nil, headers: [(String, String)] = [],
        token: String? = nil, timeout: TimeAmount = .seconds(30)
    ) async throws -> (status: Int, headers: HTTPHeaders, body: String) {
        var request = HTTPClientRequest(url: server.url + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token ?? server.adminToken)")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: timeout)
        let bytes = try await response.body.collect(upTo: 1 << 24)
        return (Int(response.status.code), response.headers, String(buffer: bytes))
    }
}

func errorCode(_ body: String) -> String? {
    (try? JSONDecoder().decode(ErrorBody.self, from: Data(body.utf8)))?.error.code
}

@Suite(.serialized) struct BadInputTests {
    /// Row counts of every table that holds registry content.
    func rowCounts(_ data: URL) throws -> [String: Int] {
        let queue = try DatabaseQueue(path: data.appendingPathComponent("registry.sqlite").path)
        defer { try? queue.close() }
        return try queue.read { db in
            var counts: [String: Int] = [:]
            for table in ["blobs", "models", "versions", "variants", "manifest_files", "aliases", "alias_history"] {
                counts[table] = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table)") ?? -1
            }
            return counts
        }
    }

    @Test func everyBadInputGetsAClearErrorAndLeavesNothing() async throws {
        let scratch = try Scratch()
        let data = scratch.url("data")
        let server = try ServerProcess(data: data)
        let http = RawHTTP(server: server)
        let model = scratch.url("model")
        try TestModel.write(to: model)
        #expect(try modelreg(["push", model.path, "m:1.0"], environment: server.environment).status == 0)
        let baselineRows = try rowCounts(data)
        let baselineBlobs = regularFiles(data.appendingPathComponent("blobs"))

        // Bad names and references from the CLI: usage errors, nothing sent.
        for arguments in [
            ["push", model.path, "Bad Name:1"], ["push", model.path, "m"], ["push", model.path, "a/b/c:1"],
            ["push", model.path, "m:1/../2"], ["pull", "m", "--dest", scratch.url("x").path],
            ["push", model.path, "m:2", "--variant", "UPPER"],
        ] {
            let result = try modelreg(arguments, environment: server.environment)
            #expect(result.status == 64, "\(arguments): \(result)")
            #expect(result.stderr.hasPrefix("error: "), "\(arguments): \(result)")
        }

        // A fetched directory pushed again: its marker is fetch's own name, refused before anything is sent.
        let fetched = scratch.url("fetched")
        try TestModel.write(to: fetched)
        try Data("{}".utf8).write(to: fetched.appendingPathComponent(".modelreg-fetch.json"))
        let refetched = try modelreg(["push", fetched.path, "m:2"], environment: server.environment)
        #expect(
            refetched.status == 64 && refetched.stderr.hasPrefix("error: ")
                && refetched.stderr.contains(".modelreg-fetch.json"), "\(refetched)")

        // Wrong digest at finalize: 400, no blob, no upload left.
        let bytes = Array("weights that will not match".utf8)
        let created = try await http.send(.POST, "/v1/uploads")
        #expect(created.status == 202)
        let location = try #require(created.headers.first(name: "Location"))
        _ = try await http.send(.PATCH, location, body: bytes, headers: [("Upload-Offset", "0")])
        let wrong = try await http.send(.PUT, "\(location)?digest=\(Digest.of(Array("other".utf8)))")
        #expect(wrong.status == 400 && errorCode(wrong.body) == "DIGEST_MISMATCH", "\(wrong)")
        #expect(wrong.body.contains("nothing was stored"))

        // A truncated upload is never finalized, so a manifest that needs it is refused, naming the blob.
        let truncated = try await http.send(.POST, "/v1/uploads")
        let truncatedLocation = try #require(truncated.headers.first(name: "Location"))
        _ = try await http.send(
            .PATCH, truncatedLocation, body: Array(bytes.prefix(5)), headers: [("Upload-Offset", "0")])
        let full = Digest.of(bytes)
        func manifest(_ path: String, _ digest: Digest = full, size: Int = 27) -> [UInt8] {
            let escaped = path.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(
                of: "\u{0}", with: "\\u0000")
            return Array(
                #"{"schemaVersion":1,"format":"other","files":[{"path":"\#(escaped)","digest":"\#(digest)","size":\#(size),"executable":false}]}"#
                    .utf8)
        }
        let missing = try await http.send(.PUT, "/v1/models/m/versions/2.0/variants/default", body: manifest("w.bin"))
        #expect(missing.status == 400 && errorCode(missing.body) == "BLOBS_MISSING", "\(missing)")
        #expect(missing.body.contains(full.description))
        #expect(try await http.send(.DELETE, truncatedLocation).status == 204)

        // Bad file paths in a manifest.
        let stored = try await http.send(.PUT, "/v1/blobs/\(full)", body: bytes)
        #expect(stored.status == 201)
        for path in [
            "../escape", "/etc/passwd", "a/../../b", "nul\u{0}byte", String(repeating: "x", count: 300), "dir//file",
            "back\\slash",
            ".modelreg-fetch.json", ".modelreg-staging-1/w.bin",
        ] {
            let response = try await http.send(.PUT, "/v1/models/m/versions/2.0/variants/default", body: manifest(path))
            #expect(
                response.status == 400 && errorCode(response.body) == "INVALID_PATH", "\(path.prefix(20)): \(response)")
        }

        // Bad names in the URL, bad manifest JSON.
        for path in [
            "/v1/models/UPPER/versions/1/variants/x", "/v1/models/a/versions/..%2F..%2Fx/variants/x",
            "/v1/models/m/versions/1/variants/Bad",
        ] {
            let response = try await http.send(.PUT, path, body: manifest("ok"))
            #expect(response.status == 400 && errorCode(response.body) == "INVALID_NAME", "\(path): \(response)")
        }
        let garbage = try await http.send(
            .PUT, "/v1/models/m/versions/2.0/variants/default", body: Array("{not json".utf8))
        #expect(garbage.status == 400 && errorCode(garbage.body) == "INVALID_MANIFEST")
        let wrongSize = try await http.send(
            .PUT, "/v1/models/m/versions/2.0/variants/default", body: manifest("w.bin", size: 26))
        #expect(wrongSize.status == 400 && errorCode(wrongSize.body) == "BLOBS_MISSING")

        // Other content for an existing version and variant: 409, and the CLI says so with exit status 7.
        let other = scratch.url("other")
        try TestModel.write(to: other, seed: 2)
        let conflict = try modelreg(["push", other.path, "m:1.0"], environment: server.environment)
        #expect(conflict.status == 7, "\(conflict)")
        #expect(conflict.stderr.contains("already published"))

        // Unknown references: 404 naming them, and no destination created.
        let dest = scratch.url("nothing")
        for reference in ["m:9.9", "m@canary", "ghost:1", "m@sha256:" + String(repeating: "0", count: 64)] {
            let result = try modelreg(["pull", reference, "--dest", dest.path], environment: server.environment)
            #expect(result.status == 3, "\(reference): \(result)")
            #expect(result.stderr.contains("not found"))
            #expect(!FileManager.default.fileExists(atPath: dest.path))
        }

        // Missing, wrong and too-small tokens.
        let noToken = try modelreg(["ls"], environment: ["MODELREG_URL": server.url])
        #expect(noToken.status == 4 && noToken.stderr.contains("MODELREG_TOKEN"), "\(noToken)")
        let reader = try modelreg(
            ["token", "create", "--scope", "read", "--name", "reader", "--json"], environment: server.environment)
        let readToken = try reader.json(CreatedToken.self).token
        let forbidden = try modelreg(
            ["push", model.path, "m:3"], environment: ["MODELREG_URL": server.url, "MODELREG_TOKEN": readToken])
        #expect(forbidden.status == 4 && forbidden.stderr.contains("needs write"), "\(forbidden)")
        let raw401 = try await http.send(.GET, "/v1/models", token: "mrt_nope")
        #expect(raw401.status == 401 && errorCode(raw401.body) == "UNAUTHORIZED")

        // Nothing above left a row, a blob (beyond the one stored on purpose) or an upload behind.
        var expectedRows = baselineRows
        expectedRows["blobs"]! += 1
        #expect(try rowCounts(data) == expectedRows)
        #expect(
            regularFiles(data.appendingPathComponent("blobs")).sorted()
                == (baselineBlobs + ["sha256/\(full.hex.prefix(2))/\(full.hex)"]).sorted())
        #expect(regularFiles(data.appendingPathComponent("uploads")).isEmpty)
        server.stop()
    }

    /// A link out of the pushed directory (a key, a directory of them) is refused unless asked for; links
    /// inside it, and a Hugging Face snapshot's links into its repository's blobs, are followed (issue 16.8).
    @Test func pushFollowsOnlyTheSymlinksItWasMeantTo() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        defer { server.stop() }
        let secret = scratch.url("outside/id_ed25519")
        try FileManager.default.createDirectory(
            at: secret.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data("-----BEGIN OPENSSH PRIVATE KEY-----".utf8).write(to: secret)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: secret.path)

        for (name, target) in [("key", secret.path), ("keys", secret.deletingLastPathComponent().path)] {
            let model = scratch.url("model-\(name)")
            try TestModel.write(to: model)
            try FileManager.default.createSymbolicLink(
                atPath: model.appendingPathComponent(name).path, withDestinationPath: target)
            let refused = try modelreg(
                ["push", model.path, "m:\(name)", "--no-inspect"], environment: server.environment)
            #expect(
                refused.status == 64 && refused.stderr.hasPrefix("error: ")
                    && refused.stderr.contains(model.appendingPathComponent(name).path)
                    && refused.stderr.contains("--follow-external-symlinks"), "\(refused)")
            let followed = try modelreg(
                ["push", model.path, "m:\(name)", "--no-inspect", "--follow-external-symlinks"],
                environment: server.environment)
            #expect(followed.status == 0, "\(followed)")
        }
        #expect(
            try modelreg(["pull", "m:key", "--dest", scratch.url("pulled").path], environment: server.environment)
                .status == 0)
        #expect(
            try Data(contentsOf: scratch.url("pulled/key")) == Data(contentsOf: secret),
            "what was opted in is what was pushed")

        // Links that stay inside: a file linked under another name, and a Hugging Face cache snapshot.
        let inside = scratch.url("model-inside")
        try TestModel.write(to: inside)
        try FileManager.default.createSymbolicLink(
            atPath: inside.appendingPathComponent("alias.json").path, withDestinationPath: "config.json")
        #expect(
            try modelreg(["push", inside.path, "m:inside", "--no-inspect"], environment: server.environment).status == 0
        )
        let repository = scratch.url("hub/models--org--tiny")
        let revision = repository.appendingPathComponent("snapshots/0123abc")
        try FileManager.default.createDirectory(at: revision, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(
            at: repository.appendingPathComponent("blobs"), withIntermediateDirectories: true)
        for (file, bytes) in try snapshot(inside) where !file.contains("/") {
            let blob = repository.appendingPathComponent("blobs/\(Digest.of(bytes.0).hex)")
            if !FileManager.default.fileExists(atPath: blob.path) { try bytes.0.write(to: blob) }
            try FileManager.default.createSymbolicLink(
                atPath: revision.appendingPathComponent(file).path,
                withDestinationPath: "../../blobs/\(Digest.of(bytes.0).hex)")
        }
        let hub = try modelreg(["push", revision.path, "m:hub", "--no-inspect"], environment: server.environment)
        #expect(hub.status == 0, "\(hub)")
    }

    /// Issue 15.5: each failure a user meets first says what went wrong and what to do, in one line, with
    /// the documented exit code.
    @Test func connectionAndStartupErrorsSayWhatToDo() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        defer { server.stop() }
        let port = try #require(URL(string: server.url)?.port)
        let cases: [(String, Int32, String)] = [
            ("127.0.0.1:\(port)", 64, "http://HOST:PORT"),
            ("ftp://127.0.0.1:\(port)", 64, "http://HOST:PORT"),
            ("http://127.0.0.1:9", 6, "connection refused"),
            ("https://127.0.0.1:\(port)", 6, "use an http:// URL"),
        ]
        for (url, status, words) in cases {
            let result = try modelreg(["ls"], environment: ["MODELREG_URL": url, "MODELREG_TOKEN": server.adminToken])
            #expect(
                result.status == status && result.stderr.hasPrefix("error: ") && result.stderr.contains(words),
                "\(url): \(result)")
            #expect(
                result.stderr.split(separator: "\n").count == 1 && !result.stderr.contains("errno"), "\(url): \(result)"
            )
        }
        // The server's 401 speaks to any HTTP client; the CLI adds its own advice.
        let (_, body) = try shell("curl -s \(server.url)/v1/models")
        #expect(body.contains("Authorization: Bearer") && !body.contains("--token"), "\(body)")
        let anonymous = try modelreg(["ls"], environment: ["MODELREG_URL": server.url])
        #expect(anonymous.status == 4 && anonymous.stderr.contains("--token-file"), "\(anonymous)")

        // A second server on a taken port fails before it touches its data directory.
        let second = scratch.url("second")
        let busy = try modelreg(["serve", "--port", String(port), "--data", second.path])
        #expect(busy.status == 7 && busy.stderr.hasPrefix("error: ") && busy.stderr.contains("port \(port)"), "\(busy)")
        #expect(!FileManager.default.fileExists(atPath: second.path), "no data directory, no admin token")
    }

    /// Issue 15.6: one grammar for every command: argument errors are one `error:` line (exit 64), `--json`
    /// puts even a failure as JSON on standard output, `digest --json` and `fetch -q` exist.
    @Test func everyCommandSpeaksTheSameGrammar() throws {
        let scratch = try Scratch()
        for arguments in [["push"], ["fetch", "m:1", "--dest", "d", "--bogus"], ["alias", "set", "m"], ["nonsense"]] {
            let result = try modelreg(arguments)
            #expect(
                result.status == 64 && result.stderr.hasPrefix("error: ")
                    && result.stderr.split(separator: "\n").count == 1
                    && result.stderr.contains("--help"), "\(arguments): \(result)")
        }
        #expect(try modelreg(["push", "--help"]).status == 0)

        let file = scratch.url("weights.bin")
        try Data("weights".utf8).write(to: file)
        let digest = try modelreg(["digest", file.path, "--json"])
        let listed = try JSONSerialization.jsonObject(with: Data(digest.stdout.utf8)) as? [String: [[String: String]]]
        #expect(listed?["files"]?.first?["digest"] == Digest.of(Data("weights".utf8)).description, "\(digest)")

        let unreachable = try modelreg(
            ["ls", "--json"], environment: ["MODELREG_URL": "http://127.0.0.1:9", "MODELREG_TOKEN": "mrt_x"])
        let failure = try JSONSerialization.jsonObject(with: Data(unreachable.stdout.utf8)) as? [String: [String: Any]]
        #expect(
            unreachable.status == 6 && failure?["error"]?["code"] as? String == "NETWORK"
                && failure?["error"]?["exitCode"] as? Int == 6, "\(unreachable)")
        let missing = try modelreg(["inspect", scratch.url("nonexistent").path])
        #expect(missing.status == 64 && missing.stderr.contains("does not exist"), "\(missing)")

        let server = try ServerProcess(data: scratch.url("data"))
        defer { server.stop() }
        let model = scratch.url("model")
        try TestModel.write(to: model)
        #expect(try modelreg(["push", model.path, "m:1"], environment: server.environment).status == 0)
        let quiet = try modelreg(
            ["fetch", "m:1", "--dest", scratch.url("dest").path, "-q"], environment: server.environment)
        #expect(quiet.status == 0 && quiet.stderr.isEmpty && quiet.stdout.contains("fetched"), "\(quiet)")
    }

    @Test func aCorruptBlobIsRefusedAndTheDestinationUntouched() throws {
        let scratch = try Scratch()
        let data = scratch.url("data")
        let server = try ServerProcess(data: data)
        let model = scratch.url("model")
        try TestModel.write(to: model)
        #expect(try modelreg(["push", model.path, "m:1"], environment: server.environment).status == 0)
        let weights = try Data(contentsOf: model.appendingPathComponent("model.safetensors"))
        let digest = Digest.of(weights)
        let blob = data.appendingPathComponent("blobs/sha256/\(digest.hex.prefix(2))/\(digest.hex)")
        var corrupted = try Data(contentsOf: blob)
        corrupted[corrupted.count / 2] ^= 0x01
        try corrupted.write(to: blob)

        let dest = scratch.url("dest")
        let result = try modelreg(["pull", "m:1", "--dest", dest.path], environment: server.environment)
        #expect(result.status == 5, "\(result)")
        #expect(result.stderr.contains(digest.description))
        #expect(
            !FileManager.default.fileExists(atPath: dest.path),
            "the destination it created is gone again, staging and all")
        server.stop()
    }
}
