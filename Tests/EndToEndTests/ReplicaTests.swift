import Foundation
import TestServers
import Testing

/// `serve --metadata postgres://…`: several servers on one PostgreSQL database answer as one registry, and a
/// database that goes away and comes back costs NOT_READY answers while it is away, nothing more.
@Suite(.serialized) struct ReplicaTests {
    /// Two servers, each with its own data directory, on one database: tokens, pushes, alias moves and
    /// revocations through one are answered by the other at once, though each keeps its answers to reads.
    @Test func writesThroughOneServerAreSeenByAnotherAtOnce() throws {
        let postgres = try PostgresServer.shared()
        let database = try postgres.createDatabase()
        defer { postgres.dropDatabase(database) }
        let metadata = ["--metadata", postgres.url(database) + "?sslmode=disable"]
        let scratch = try Scratch()
        let first = try ServerProcess(data: scratch.url("first"), extraArguments: metadata)
        // The first server made the admin token in the database; the second finds it there.
        let second = try ServerProcess(
            data: scratch.url("second"), extraArguments: metadata, adminToken: first.adminToken)
        #expect(!FileManager.default.fileExists(atPath: scratch.url("second/admin.token").path))
        #expect(!FileManager.default.fileExists(atPath: scratch.url("first/registry.sqlite").path))

        for (index, version) in ["1", "2"].enumerated() {
            let directory = scratch.url("model-\(version)")
            try TestModel.write(to: directory, seed: UInt64(index + 1))
            let push = try modelreg(["push", directory.path, "org/m:\(version)"], environment: first.environment)
            try #require(push.status == 0, "\(push)")
        }
        func prod(on server: ServerProcess) throws -> String {
            let show = try modelreg(["show", "org/m@prod", "--json"], environment: server.environment)
            try #require(show.status == 0, "\(show)")
            return try show.json(ResolvedJSON.self).version
        }
        for version in ["1", "2", "1", "2"] {
            let set = try modelreg(["alias", "set", "org/m", "prod", version], environment: first.environment)
            try #require(set.status == 0, "\(set)")
            #expect(try prod(on: second) == version, "the second server answered an earlier target")
            // Kept by the second server now; the next move is made through the first.
            #expect(try prod(on: second) == version)
        }

        let created = try modelreg(
            ["token", "create", "--name", "reader", "--scope", "read"], environment: second.environment)
        try #require(created.status == 0, "\(created)")
        let reader = [
            "MODELREG_URL": second.url,
            "MODELREG_TOKEN": created.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
        ]
        #expect(try modelreg(["ls"], environment: reader).status == 0)
        let revoked = try modelreg(["token", "revoke", "reader"], environment: first.environment)
        try #require(revoked.status == 0, "\(revoked)")
        let refused = try modelreg(["ls"], environment: reader)
        #expect(refused.status == 4 && refused.stderr.contains("revoked"), "\(refused)")
    }

    /// PostgreSQL stopped under a running server: readiness and requests answer 503 NOT_READY naming the
    /// database, within their waits; started again, the same server serves everything, pushes included.
    @Test func aDatabaseRestartCostsNotReadyAnswersWhileItIsDown() throws {
        let postgres = try PostgresServer.dedicated()
        defer { postgres.destroy() }
        let database = try postgres.createDatabase()
        let endpoint = "127.0.0.1:\(postgres.port)/\(database)"
        let scratch = try Scratch()
        let server = try ServerProcess(
            data: scratch.url("data"), extraArguments: ["--metadata", postgres.url(database) + "?sslmode=disable"])
        let model = scratch.url("model")
        try TestModel.write(to: model)
        try #require(try modelreg(["push", model.path, "org/m:1"], environment: server.environment).status == 0)
        #expect(try httpStatus(server.url + "/health/ready") == 200)

        try postgres.stop()
        let started = ContinuousClock.now
        let ready = try shell("curl -s --max-time 10 -w ' %{http_code}' '\(server.url)/health/ready'")
        #expect(ContinuousClock.now - started < .seconds(3), "readiness must answer before a probe's timeout")
        #expect(ready.output.hasSuffix(" 503") && ready.output.contains("NOT_READY"), "\(ready.output)")
        #expect(ready.output.contains(endpoint), "\(ready.output)")
        let show = try modelreg(["show", "org/m:1"], environment: server.environment)
        #expect(show.status != 0 && show.stderr.contains("PostgreSQL at \(endpoint)"), "\(show)")
        #expect(show.stderr.split(separator: "\n").count == 1, "\(show)")

        try postgres.start()
        try waitUntil("the server is ready again", timeout: 30, interval: 100_000) {
            try httpStatus(server.url + "/health/ready") == 200
        }
        #expect(try modelreg(["show", "org/m:1"], environment: server.environment).status == 0)
        let pull = try modelreg(
            ["pull", "org/m:1", "--dest", scratch.url("pulled").path], environment: server.environment)
        #expect(pull.status == 0, "\(pull)")
        try TestModel.write(to: model, seed: 2)
        let push = try modelreg(["push", model.path, "org/m:2"], environment: server.environment)
        #expect(push.status == 0, "\(push)")
        #expect(server.process.isRunning)
    }

    /// Bad `--metadata` values and a database nobody answers for stop `serve` with one error line.
    @Test func serveRefusesAMetadataURLItCannotUse() throws {
        let scratch = try Scratch()
        let data = scratch.url("data").path
        let notAURL = try modelreg(["serve", "--port", "0", "--data", data, "--metadata", "mysql://u@h/db"])
        #expect(
            notAURL.status == 64
                && notAURL.stderr.hasPrefix("error: --metadata mysql://u@h/db is not a postgres:// URL"), "\(notAURL)")
        let secret = try modelreg([
            "serve", "--port", "0", "--data", data, "--metadata", "postgres://u:hunter2@127.0.0.1:1/db?sslmode=bogus",
        ])
        #expect(secret.status == 64 && !secret.stderr.contains("hunter2"), "\(secret)")
        let port = try PostgresServer.freePort()
        let started = ContinuousClock.now
        let nobody = try modelreg([
            "serve", "--port", "0", "--data", data, "--metadata", "postgres://u@127.0.0.1:\(port)/db?sslmode=disable",
        ])
        #expect(ContinuousClock.now - started < .seconds(30))
        #expect(nobody.status != 0 && nobody.stderr.contains("PostgreSQL at 127.0.0.1:\(port)/db"), "\(nobody)")
        #expect(nobody.stderr.split(separator: "\n").filter { $0.hasPrefix("error:") }.count == 1, "\(nobody)")
    }
}
