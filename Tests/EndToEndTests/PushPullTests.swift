import Foundation
import ModelRegistryCore
import RegistryAPI
import Testing

/// What `push --json` and `pull --json` report, as the tests read it.
struct PushReportJSON: Decodable {
    var digest: String
    var created: Bool
    var files: Int
    var filesHashed: Int
    var blobsUploaded: Int
    var blobsSkipped: Int
    var bytesSent: Int64
    var bytesSkipped: Int64
    var bytesResumed: Int64
}

struct PullReportJSON: Decodable {
    var version: String
    var variant: String
    var digest: String
    var files: Int
    var bytes: Int64
    var bytesReceived: Int64
    var bytesResumed: Int64
}

/// The binary end to end: a real server process on a free loopback port, the real CLI, real files.
@Suite(.serialized) struct PushPullTests {
    @Test func pushPullRestartAndRepush() throws {
        let scratch = try Scratch()
        let model = scratch.url("Tiny-Llama")
        try TestModel.write(to: model, shards: 2)
        let data = scratch.url("data")
        var server = try ServerProcess(data: data)

        let push = try modelreg(
            ["push", model.path, "org/tiny-llama:1.0", "--variant", "fp16", "--json"], environment: server.environment)
        try #require(push.status == 0, "\(push)")
        let report = try push.json(PushReportJSON.self)
        let local = try snapshot(model)
        let expectedBytes = local.values.reduce(0) { $0 + Int64($1.0.count) }
        #expect(report.created && report.files == local.count && local.count == 9)
        #expect(report.bytesSent == expectedBytes && report.bytesSkipped == 0)

        let firstPull = scratch.url("pulled/one")
        let pull = try modelreg(
            ["pull", "org/tiny-llama:1.0", "--dest", firstPull.path, "--json"], environment: server.environment)
        try #require(pull.status == 0, "\(pull)")
        #expect(try pull.json(PullReportJSON.self).digest == report.digest)
        try expectSameTree(model, firstPull)
        #expect(
            regularFiles(scratch.url("pulled")).allSatisfy { $0.hasPrefix("one/") }, "no staging directory left behind")

        // A second push of the same directory sends no blob bytes.
        let again = try modelreg(
            ["push", model.path, "org/tiny-llama:1.0", "--variant", "fp16", "--json"], environment: server.environment)
        try #require(again.status == 0, "\(again)")
        let second = try again.json(PushReportJSON.self)
        #expect(second.bytesSent == 0 && second.blobsUploaded == 0 && !second.created)
        #expect(second.bytesSkipped == expectedBytes && second.digest == report.digest)

        // A restart loses nothing.
        server.stop()
        server = try ServerProcess(data: data)
        let secondPull = scratch.url("pulled/two")
        let afterRestart = try modelreg(
            ["pull", "org/tiny-llama@\(report.digest)", "--dest", secondPull.path], environment: server.environment)
        try #require(afterRestart.status == 0, "\(afterRestart)")
        try expectSameTree(model, secondPull)

        let alias = try modelreg(["alias", "set", "org/tiny-llama", "prod", "1.0"], environment: server.environment)
        #expect(alias.status == 0, "\(alias)")
        let viaAlias = scratch.url("pulled/prod")
        #expect(
            try modelreg(["pull", "org/tiny-llama@prod", "--dest", viaAlias.path], environment: server.environment)
                .status == 0)
        try expectSameTree(model, viaAlias)

        let list = try modelreg(["ls", "--json"], environment: server.environment)
        let models = try list.json(ModelList.self).models
        #expect(models.map(\.name.value) == ["org/tiny-llama"])
        #expect(models.first?.aliases.map(\.name.value) == ["prod"])
        let show = try modelreg(["show", "org/tiny-llama@prod"], environment: server.environment)
        #expect(show.status == 0)
        #expect(show.stdout.contains("model-00001-of-00002.safetensors") && show.stdout.contains(report.digest))
        let showModel = try modelreg(["show", "org/tiny-llama", "--json"], environment: server.environment)
        #expect(try showModel.json(ModelDetail.self).versions.first?.variants.first?.name.value == "fp16")
        server.stop()
    }

    /// A server killed between storing a blob and recording it leaves the blob stored but unknown to publishes
    /// (here: its record removed from the database behind the running server). The next push skips it as stored,
    /// is told BLOBS_MISSING, sends it again, which records it, and publishes.
    @Test func aStoredBlobWithoutItsRecordIsSentAgain() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        let model = scratch.url("model")
        try TestModel.write(to: model)
        let first = try modelreg(["push", model.path, "m:1"], environment: server.environment)
        try #require(first.status == 0, "\(first)")
        let forget = try shell(
            "python3 -c \"import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('DELETE FROM blobs'); c.commit()\" '\(server.data.appendingPathComponent("registry.sqlite").path)'"
        )
        try #require(forget.status == 0, "\(forget.output)")
        let second = try modelreg(["push", model.path, "m:2"], environment: server.environment)
        #expect(second.status == 0, "\(second)")
        #expect(second.stderr.contains("sending them again"), "\(second)")
        let pulled = scratch.url("pulled")
        let pull = try modelreg(["pull", "m:2", "--dest", pulled.path], environment: server.environment)
        #expect(pull.status == 0, "\(pull)")
    }

    @Test func aCopiedBinaryStartsAloneWithItsDefaults() throws {
        let scratch = try Scratch()
        let binary = scratch.url("bin/modelreg")
        try FileManager.default.createDirectory(
            at: binary.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: modelregBinary, to: binary)
        let work = scratch.url("work")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        // A process another test forks while the copy is open for writing holds it open until it execs; running
        // the copy meanwhile fails with ETXTBSY, so the start is tried again for a moment.
        var started: ServerProcess?
        for attempt in 1...50 where started == nil {
            do {
                started = try ServerProcess(
                    data: work.appendingPathComponent("modelreg-data"), binary: binary, workingDirectory: work)
            } catch let error as NSError
                where attempt < 50 && (error.userInfo[NSUnderlyingErrorKey] as? NSError)?.code == Int(ETXTBSY)
            {
                usleep(100_000)
            }
        }
        let server = try #require(started)
        let attributes = try FileManager.default.attributesOfItem(
            atPath: work.appendingPathComponent("modelreg-data/admin.token").path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        for path in ["registry.sqlite", "blobs/sha256", "uploads", "tmp"] {
            #expect(
                FileManager.default.fileExists(atPath: work.appendingPathComponent("modelreg-data/\(path)").path),
                "\(path)")
        }
        let ready = try modelreg(["ls"], environment: server.environment)
        #expect(ready.status == 0, "\(ready)")
        #expect(ready.stdout.contains("no models yet"))
        server.stop()
        #expect(server.process.terminationStatus == 0)
    }

    @Test func tokenCommands() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        let created = try modelreg(
            ["token", "create", "--scope", "write", "--name", "ci", "--json"], environment: server.environment)
        try #require(created.status == 0, "\(created)")
        let token = try created.json(CreatedToken.self)
        #expect(token.scope == .write && token.token.hasPrefix("mrt_"))

        let model = scratch.url("m")
        try TestModel.write(to: model)
        let withWrite = ["MODELREG_URL": server.url, "MODELREG_TOKEN": token.token]
        #expect(try modelreg(["push", model.path, "m:1"], environment: withWrite).status == 0)
        let cannotAdmin = try modelreg(["token", "list"], environment: withWrite)
        #expect(cannotAdmin.status == 4)
        #expect(cannotAdmin.stderr.contains("needs admin"))

        let list = try modelreg(["token", "list"], environment: server.environment)
        #expect(list.stdout.contains("ci") && !list.stdout.contains(token.token))
        #expect(try modelreg(["token", "revoke", "ci"], environment: server.environment).status == 0)
        let revoked = try modelreg(["ls"], environment: withWrite)
        #expect(revoked.status == 4)
        #expect(revoked.stderr.contains("invalid or revoked"))

        // Tokens never appear in clear in the database or the log.
        server.stop()
        for file in ["registry.sqlite", "registry.sqlite-wal"] {
            let bytes = (try? Data(contentsOf: scratch.url("data/\(file)"))) ?? Data()
            #expect(bytes.range(of: Data(token.token.utf8)) == nil, "\(file)")
            #expect(bytes.range(of: Data(server.adminToken.utf8)) == nil, "\(file)")
        }
        #expect(!server.logText.contains(token.token))
    }
}
