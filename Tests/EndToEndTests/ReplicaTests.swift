import Foundation
import ModelRegistryCore
import TestServers
import Testing

/// `serve --metadata postgres://…`: several servers on one PostgreSQL database answer as one registry, and a
/// database that goes away and comes back costs NOT_READY answers while it is away, nothing more.
@Suite(.serialized) struct ReplicaTests {
    /// Two servers, each with its own data directory, on one database: tokens and pushes through one are
    /// answered by the other at once; alias moves and revocations as soon as the database announces them,
    /// though each keeps its answers to reads.
    @Test func writesThroughOneServerAreSeenByAnotherAtOnce() throws {
        let pair = try ServerPair()
        let (scratch, first, second) = (pair.scratch, pair.first, pair.second)
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
            // Through the first server at once; through the second once the database's announcement of the
            // move arrived there (milliseconds).
            #expect(try prod(on: first) == version, "the server that moved the alias answered an earlier target")
            try waitUntil("the second server answers the new target", timeout: 5) { try prod(on: second) == version }
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
        // The second server keeps the tokens it checked until the database announces a change to them.
        var refused = CommandResult(status: 0, stdout: "", stderr: "")
        try waitUntil("the second server refuses the revoked token", timeout: 10) {
            refused = try modelreg(["ls"], environment: reader)
            return refused.status != 0
        }
        #expect(refused.status == 4 && refused.stderr.contains("revoked"), "\(refused)")
    }

    /// The web pages' sessions live in the database: signed in through one replica, a browser is signed in on
    /// every replica behind the Service, and signing out through another ends the session everywhere.
    @Test func aWebSessionStartedThroughOneReplicaIsKnownToAnother() throws {
        let pair = try ServerPair()
        let (scratch, first, second) = (pair.scratch, pair.first, pair.second)
        // One cookie jar, as one browser: cookies of 127.0.0.1 go to every port.
        let jar = scratch.url("jar").path
        func curl(_ arguments: String) throws -> String {
            try shell("curl -sS -i -c '\(jar)' -b '\(jar)' \(arguments)").output
        }
        let form = try curl("'\(first.url)/ui/sign-in'")
        let formToken = try #require(form.firstMatch(of: /name="form" value="([0-9a-f]+)"/)?.1, "\(form)")
        let signedIn = try curl("--data 'form=\(formToken)&token=\(first.adminToken)' '\(first.url)/ui/sign-in'")
        #expect(signedIn.hasPrefix("HTTP/1.1 303") && signedIn.contains("modelreg_session="), "\(signedIn)")
        let page = try curl("'\(second.url)/ui'")
        #expect(page.hasPrefix("HTTP/1.1 200") && page.contains("id=\"signed-in-as\">admin<"), "\(page)")
        let csrf = try #require(page.firstMatch(of: /name="csrf" value="([0-9a-f]+)"/)?.1, "\(page)")
        let signedOut = try curl("--data 'csrf=\(csrf)' '\(second.url)/ui/sign-out'")
        #expect(signedOut.hasPrefix("HTTP/1.1 303"), "\(signedOut)")
        // The browser would drop the cookie now; one that kept it is refused by every replica.
        let kept = try #require(signedIn.firstMatch(of: /modelreg_session=([0-9a-f]+)/)?.1)
        for server in [first, second] {
            let again = try shell("curl -sS -i -b 'modelreg_session=\(kept)' '\(server.url)/ui'").output
            #expect(again.contains("Location: /ui/sign-in"), "\(again)")
        }
    }

    /// A server on PostgreSQL keeps the tokens it checked, not reading them at every request: a change the
    /// database does not announce (its trigger disabled, by hand) goes unseen, and the next announced change
    /// reaches the server within seconds.
    @Test func aServerKeepsTokensUntilTheDatabaseAnnouncesAChange() throws {
        let postgres = try PostgresServer.shared()
        let database = try postgres.createDatabase()
        defer { postgres.dropDatabase(database) }
        let scratch = try Scratch()
        let server = try ServerProcess(
            data: scratch.url("data"), extraArguments: ["--metadata", postgres.url(database) + "?sslmode=disable"])
        let created = try modelreg(
            ["token", "create", "--name", "reader", "--scope", "read"], environment: server.environment)
        try #require(created.status == 0, "\(created)")
        let reader = [
            "MODELREG_URL": server.url,
            "MODELREG_TOKEN": created.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
        ]
        #expect(try modelreg(["ls"], environment: reader).status == 0)

        _ = try postgres.psql(
            """
            ALTER TABLE tokens DISABLE TRIGGER tokens_changed;
            UPDATE tokens SET revoked_at = '2026-01-01T00:00:00.000Z' WHERE name = 'reader';
            ALTER TABLE tokens ENABLE TRIGGER tokens_changed;
            """, database: database)
        #expect(try modelreg(["ls"], environment: reader).status == 0, "the token was read again, not kept")

        _ = try postgres.psql("UPDATE tokens SET scope = scope WHERE name = 'admin'", database: database)
        try waitUntil("the server refuses the revoked token", timeout: 10) {
            try modelreg(["ls"], environment: reader).status == 4
        }
    }

    /// PostgreSQL stopped under a running server taking reads: readiness and requests answer 503 NOT_READY
    /// naming the database, within their waits, and nothing else goes wrong; started again, the same server
    /// serves everything, pushes included.
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

        // Reads all along, each answer's status kept.
        let statuses = StatusLog()
        let done = StopFlag()
        let reader = Thread { [url = server.url, token = server.adminToken] in
            while !done.isSet {
                // Longer than a request's wait for a connection (10 s): every request gets its answer.
                let read = try? shell(
                    "curl -s -o /dev/null -w '%{http_code}' --max-time 20 -H 'Authorization: Bearer \(token)' '\(url)/v1/models/org/m'"
                )
                statuses.append(read.flatMap { Int($0.output) } ?? 0)
                usleep(50_000)
            }
        }
        reader.start()
        try postgres.stop()
        let started = ContinuousClock.now
        let ready = try shell("curl -s --max-time 10 -w ' %{http_code}' '\(server.url)/health/ready'")
        #expect(ContinuousClock.now - started < .seconds(3), "readiness must answer before a probe's timeout")
        #expect(ready.output.hasSuffix(" 503") && ready.output.contains("NOT_READY"), "\(ready.output)")
        #expect(ready.output.contains(endpoint), "\(ready.output)")
        let show = try modelreg(["show", "org/m:1"], environment: server.environment)
        #expect(show.status != 0 && show.stderr.contains("PostgreSQL at \(endpoint)"), "\(show)")
        #expect(show.stderr.split(separator: "\n").count == 1, "\(show)")

        try waitUntil("a read answered while the database is down", timeout: 60) { statuses.all.contains(503) }
        try postgres.start()
        try waitUntil("the server is ready again", timeout: 30, interval: 100_000) {
            try httpStatus(server.url + "/health/ready") == 200
        }
        let answered = statuses.all.count
        try waitUntil("reads succeed again", timeout: 30) { statuses.all.count > answered && statuses.last == 200 }
        done.set()
        while reader.isExecuting { usleep(20_000) }
        #expect(
            Set(statuses.all).isSubset(of: [200, 503]),
            "\(statuses.all)\n\(server.logText.split(separator: "\n").filter { $0.contains("error") }.joined(separator: "\n"))"
        )
        #expect(try modelreg(["show", "org/m:1"], environment: server.environment).status == 0)
        let pull = try modelreg(
            ["pull", "org/m:1", "--dest", scratch.url("pulled").path], environment: server.environment)
        #expect(pull.status == 0, "\(pull)")
        try TestModel.write(to: model, seed: 2)
        let push = try modelreg(["push", model.path, "org/m:2"], environment: server.environment)
        #expect(push.status == 0, "\(push)")
        #expect(server.process.isRunning)
    }

    /// Two servers on one PostgreSQL database and one S3 bucket (moto): a model pushed through one is pulled
    /// and fetched through the other byte for byte; the same files pushed through the other are stored once;
    /// boto3 finds every blob object holding the bytes of its digest.
    @Test func serversOnPostgreSQLAndS3ShareEveryBlob() throws {
        let storage = try SharedStorage()
        let (scratch, moto, bucket, arguments) = (storage.scratch, storage.moto, storage.bucket, storage.arguments)
        let first = try ServerProcess(data: scratch.url("first"), extraArguments: arguments)
        let second = try ServerProcess(
            data: scratch.url("second"), extraArguments: arguments, adminToken: first.adminToken)

        let model = scratch.url("model")
        try TestModel.write(to: model, shards: 2)
        let push = try modelreg(["push", model.path, "org/m:1", "--json"], environment: first.environment)
        try #require(push.status == 0, "\(push)")
        let pulled = scratch.url("pulled")
        let pull = try modelreg(["pull", "org/m:1", "--dest", pulled.path], environment: second.environment)
        try #require(pull.status == 0, "\(pull)")
        try expectSameTree(model, pulled)
        try #require(try modelreg(["alias", "set", "org/m", "prod", "1"], environment: first.environment).status == 0)
        let fetched = scratch.url("fetched")
        let fetch = try modelreg(["fetch", "org/m@prod", "--dest", fetched.path], environment: second.environment)
        try #require(fetch.status == 0, "\(fetch)")
        try FileManager.default.removeItem(at: fetched.appendingPathComponent(".modelreg-fetch.json"))
        try expectSameTree(model, fetched)

        let again = try modelreg(["push", model.path, "org/m:2", "--json"], environment: second.environment)
        try #require(again.status == 0, "\(again)")
        #expect(try again.json(PushReportJSON.self).blobsUploaded == 0, "\(again)")

        let check = try shell(
            """
            AWS_ACCESS_KEY_ID=\(MotoServer.accessKey) AWS_SECRET_ACCESS_KEY=\(MotoServer.secretKey) python3 -c '
            import boto3, hashlib
            s3 = boto3.client("s3", endpoint_url="\(moto.endpoint)", region_name="us-east-1")
            keys = [o["Key"] for o in s3.list_objects_v2(Bucket="\(bucket)", Prefix="reg/blobs/sha256/")["Contents"]]
            for key in keys:
                body = s3.get_object(Bucket="\(bucket)", Key=key)["Body"].read()
                assert hashlib.sha256(body).hexdigest() == key.rsplit("/", 1)[1], key
            print(len(keys))
            '
            """)
        let files = regularFiles(model)
        #expect(
            check.status == 0 && Int(check.output.trimmingCharacters(in: .whitespacesAndNewlines)) == files.count,
            "\(check.output)")
        #expect(regularFiles(scratch.url("first")) == ["admin.token"], "the data directory holds more than the token")
    }

    /// A push to a registry whose blobs are in S3 hashes each new file first and sends it straight to its blob's
    /// key: nothing is copied inside the object store, as a digest-less upload would be at its commit. What the
    /// registry sent the object store passes through a relay that keeps it.
    @Test func aPushToS3SendsEveryBlobToItsKeyWithoutACopy() throws {
        let relay = try InterruptingProxy(
            to: try MotoServer.shared().endpoint, direction: .toServer, after: Int.max, action: .cut, armed: false)
        let storage = try SharedStorage(endpoint: relay.url)
        let server = try ServerProcess(data: storage.scratch.url("server"), extraArguments: storage.arguments)
        let model = storage.scratch.url("model")
        try TestModel.write(to: model, shards: 2)
        relay.arm()
        let push = try modelreg(["push", model.path, "org/m:1", "--json"], environment: server.environment)
        try #require(push.status == 0, "\(push)")
        let sent = relay.sentToServer
        #expect(sent.contains("/reg/blobs/sha256/"), "no blob went to its key")
        #expect(!sent.lowercased().contains("x-amz-copy-source"), "a blob was copied inside the object store")
        let pulled = storage.scratch.url("pulled")
        let pull = try modelreg(["pull", "org/m:1", "--dest", pulled.path], environment: server.environment)
        try #require(pull.status == 0, "\(pull)")
        try expectSameTree(model, pulled)
    }

    /// On S3, blob downloads answer 307 to a presigned URL: `pull` fetches the bytes from the object store
    /// (through a relay that cuts the first long answer, so the pull resumes there with `Range`), checks them,
    /// and sends the object store no registry token; the registry sends no blob byte itself. With
    /// `--no-blob-redirect` it serves them.
    @Test func blobDownloadsAreRedirectedToTheObjectStore() throws {
        let relay = try InterruptingProxy(
            to: try MotoServer.shared().endpoint, direction: .toClient, after: 700_000, action: .cut, armed: false)
        let storage = try SharedStorage(endpoint: relay.url)
        let (scratch, arguments) = (storage.scratch, storage.arguments)
        let server = try ServerProcess(data: scratch.url("redirecting"), extraArguments: arguments)
        let model = scratch.url("model")
        try TestModel.write(to: model)
        var generator = SystemRandomNumberGenerator()
        try Data((0..<(3 << 20)).map { _ in UInt8.random(in: 0...255, using: &generator) })
            .write(to: model.appendingPathComponent("extra.bin"))
        let push = try modelreg(["push", model.path, "org/m:1", "--no-inspect"], environment: server.environment)
        try #require(push.status == 0, "\(push)")
        relay.arm()

        let pulled = scratch.url("pulled")
        let pull = try modelreg(["pull", "org/m:1", "--dest", pulled.path], environment: server.environment)
        try #require(pull.status == 0, "\(pull)")
        try expectSameTree(model, pulled)
        #expect(relay.interrupted, "the download from the object store was not cut")
        let sent = relay.sentToServer
        #expect(sent.contains("X-Amz-Signature="), "no presigned GET reached the object store")
        #expect(sent.contains("Range: bytes="), "the cut download did not resume with a range")
        #expect(!sent.contains(server.adminToken), "the registry's token went to the object store")
        let metrics = try shell(
            "curl -s -H 'Authorization: Bearer \(server.adminToken)' '\(server.url)/metrics'"
        ).output
        #expect(metrics.contains("modelreg_blob_redirects_total"), "\(metrics)")
        #expect(!metrics.contains("modelreg_blob_bytes_sent_total "), "the registry sent blob bytes itself")

        let serving = try ServerProcess(
            data: scratch.url("serving"), extraArguments: arguments + ["--no-blob-redirect"],
            adminToken: server.adminToken)
        let served = scratch.url("served")
        let direct = try modelreg(["pull", "org/m:1", "--dest", served.path], environment: serving.environment)
        try #require(direct.status == 0, "\(direct)")
        try expectSameTree(model, served)
        let servedMetrics = try shell(
            "curl -s -H 'Authorization: Bearer \(server.adminToken)' '\(serving.url)/metrics'"
        ).output
        #expect(servedMetrics.contains("modelreg_blob_bytes_sent_total "), "\(servedMetrics)")
        #expect(!servedMetrics.contains("modelreg_blob_redirects_total"))

        // The object store gone: readiness says which, and so does a pull.
        relay.close()
        let ready = try shell("curl -s --max-time 10 -w ' %{http_code}' '\(serving.url)/health/ready'")
        #expect(ready.output.hasSuffix(" 503") && ready.output.contains("S3 at \(relay.url)"), "\(ready.output)")
        let failed = try modelreg(
            ["pull", "org/m:1", "--dest", scratch.url("failed").path], environment: serving.environment)
        #expect(failed.status != 0 && failed.stderr.contains("S3 at \(relay.url)"), "\(failed)")
    }

    /// `modelreg migrate`: an embedded registry copied into PostgreSQL and S3 is served from there with all it
    /// had (versions, aliases, tokens); a second run copies nothing; a directory a server runs on is refused.
    @Test func anEmbeddedRegistryMigratesToPostgreSQLAndS3() throws {
        struct Report: Decodable {
            var blobs: Int
            var blobsCopied: Int
            var models: Int
            var metadataImported: Bool
        }
        let storage = try SharedStorage()
        let (scratch, target) = (storage.scratch, storage.arguments)
        let data = scratch.url("data")
        let embedded = try ServerProcess(data: data)
        for (index, version) in ["1", "2"].enumerated() {
            let model = scratch.url("model-\(version)")
            try TestModel.write(to: model, seed: UInt64(index + 1))
            try #require(
                try modelreg(["push", model.path, "org/m:\(version)"], environment: embedded.environment).status == 0)
        }
        try #require(
            try modelreg(["alias", "set", "org/m", "prod", "1"], environment: embedded.environment).status == 0)
        let created = try modelreg(
            ["token", "create", "--name", "reader", "--scope", "read"], environment: embedded.environment)
        try #require(created.status == 0, "\(created)")

        let busy = try modelreg(["migrate", "--from", data.path] + target)
        #expect(busy.status == 7 && busy.stderr.contains("stop it before migrating it"), "\(busy)")
        embedded.stop()

        // The last blob copied is damaged: the migration stops there, having copied the others and no metadata.
        let blobFiles = regularFiles(data.appendingPathComponent("blobs")).sorted()
        let damaged = data.appendingPathComponent("blobs/" + blobFiles.last!)
        let original = try Data(contentsOf: damaged)
        var flipped = original
        flipped[flipped.startIndex] ^= 0xFF
        try flipped.write(to: damaged)
        let stopped = try modelreg(["migrate", "--from", data.path] + target)
        #expect(stopped.status == 5 && stopped.stderr.contains("is corrupt"), "\(stopped)")
        try original.write(to: damaged)
        let first = try modelreg(["migrate", "--from", data.path, "--json"] + target)
        try #require(first.status == 0, "\(first)")
        let copied = try first.json(Report.self)
        #expect(copied.blobsCopied == 1 && copied.blobs == blobFiles.count, "only the blob left is copied: \(first)")
        #expect(copied.metadataImported && copied.models == 1)
        let second = try modelreg(["migrate", "--from", data.path] + target)
        #expect(second.status == 0 && second.stdout.hasPrefix("nothing to copy"), "\(second)")

        let server = try ServerProcess(
            data: scratch.url("replica"), extraArguments: target, adminToken: embedded.adminToken)
        let pulled = scratch.url("pulled")
        let pull = try modelreg(["pull", "org/m@prod", "--dest", pulled.path], environment: server.environment)
        #expect(pull.status == 0, "\(pull)")
        try expectSameTree(scratch.url("model-1"), pulled)
        let reader = [
            "MODELREG_URL": server.url,
            "MODELREG_TOKEN": created.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
        ]
        let listed = try modelreg(["ls", "org/m"], environment: reader)
        #expect(listed.status == 0 && listed.stdout.contains("2"), "\(listed)")
    }

    /// `backup --to` through a replica on PostgreSQL and S3 (its blob downloads redirected) writes a repository
    /// that `restore` puts into another database and bucket, served from there with all it had (the token
    /// too); a database that holds a registry is refused.
    @Test func aBackupThroughAReplicaRestoresIntoPostgreSQLAndS3() throws {
        let source = try SharedStorage()
        let server = try source.servers(1)[0]
        let model = source.scratch.url("model")
        try TestModel.write(to: model)
        try #require(try modelreg(["push", model.path, "org/m:1"], environment: server.environment).status == 0)
        try #require(try modelreg(["alias", "set", "org/m", "prod", "1"], environment: server.environment).status == 0)
        let repository = source.scratch.url("repository")
        let backup = try modelreg(["backup", "--to", repository.path], environment: server.environment)
        try #require(backup.status == 0, "\(backup)")

        let target = try SharedStorage()
        let restore = try modelreg(["restore", "--from", repository.path] + target.arguments)
        try #require(restore.status == 0, "\(restore)")
        let again = try modelreg(["restore", "--from", repository.path] + target.arguments)
        #expect(again.status == 7 && again.stderr.contains("holds a registry"), "\(again)")
        let restored = try ServerProcess(
            data: target.scratch.url("restored"), extraArguments: target.arguments, adminToken: server.adminToken)
        let pulled = target.scratch.url("pulled")
        let pull = try modelreg(["pull", "org/m@prod", "--dest", pulled.path], environment: restored.environment)
        #expect(pull.status == 0, "\(pull)")
        try expectSameTree(model, pulled)
    }

    /// An upload begun through one replica is continued and committed through another (its record is in
    /// PostgreSQL, its parts and tail in the bucket), as a client that lost its connection and was balanced
    /// elsewhere does: through the HTTP API, with curl.
    @Test func anUploadBegunThroughOneReplicaIsFinishedThroughAnother() throws {
        let storage = try SharedStorage()
        let replicas = try storage.servers(2)
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<(10 << 20)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let split = 9 << 20
        let (head, rest) = (storage.scratch.url("head"), storage.scratch.url("rest"))
        try Data(bytes[..<split]).write(to: head)
        try Data(bytes[split...]).write(to: rest)
        let digest = Digest.of(bytes)
        let auth = "-H 'Authorization: Bearer \(replicas[0].adminToken)'"
        let started = try shell(
            "curl -s -D - -o /dev/null -X POST \(auth) '\(replicas[0].url)/v1/uploads?digest=\(digest)'")
        let location = try #require(
            started.output.split(separator: "\r\n").first { $0.lowercased().hasPrefix("location:") }?
                .split(separator: " ").last.map(String.init), "\(started.output)")
        let first = try shell(
            "curl -s -o /dev/null -w '%{http_code}' -X PATCH \(auth) -H 'Upload-Offset: 0' --data-binary @\(head.path) '\(replicas[0].url)\(location)'"
        )
        #expect(first.output == "202", "\(first.output)")
        let status = try shell("curl -s \(auth) '\(replicas[1].url)\(location)'")
        #expect(status.output.contains("\"offset\":\(split)"), "\(status.output)")
        let second = try shell(
            "curl -s -o /dev/null -w '%{http_code}' -X PATCH \(auth) -H 'Upload-Offset: \(split)' --data-binary @\(rest.path) '\(replicas[1].url)\(location)'"
        )
        #expect(second.output == "202", "\(second.output)")
        let commit = try shell(
            "curl -s -w ' %{http_code}' -X PUT \(auth) '\(replicas[1].url)\(location)?digest=\(digest)'")
        #expect(commit.output.hasSuffix(" 201") || commit.output.hasSuffix(" 204"), "\(commit.output)")
        let download = try shell("curl -s -L \(auth) '\(replicas[0].url)/v1/blobs/\(digest)' | sha256sum")
        #expect(download.output.hasPrefix(digest.hex), "\(download.output)")
    }

    /// One server with blobs in S3 and the embedded metadata (SQLite in its data directory, uploads' records
    /// too): push, pull, restart, pull; no blob in the directory.
    @Test func oneServerKeepsBlobsInS3AndMetadataInItsDirectory() throws {
        let storage = try SharedStorage()
        let blobsOnly = Array(storage.arguments.drop { $0 != "--blobs" })
        let data = storage.scratch.url("data")
        let model = storage.scratch.url("model")
        try TestModel.write(to: model)
        let first = try ServerProcess(data: data, extraArguments: blobsOnly)
        let push = try modelreg(["push", model.path, "org/m:1"], environment: first.environment)
        try #require(push.status == 0, "\(push)")
        first.stop()
        let again = try ServerProcess(data: data, extraArguments: blobsOnly)
        let pulled = storage.scratch.url("pulled")
        let pull = try modelreg(["pull", "org/m:1", "--dest", pulled.path], environment: again.environment)
        #expect(pull.status == 0, "\(pull)")
        try expectSameTree(model, pulled)
        #expect(FileManager.default.fileExists(atPath: data.appendingPathComponent("registry.sqlite").path))
        #expect(regularFiles(data.appendingPathComponent("blobs")).isEmpty, "blobs went to the directory")
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

/// A PostgreSQL database and an S3 bucket (moto) of a test's own, and the `serve` arguments for them: what
/// replicas share.
final class SharedStorage {
    let scratch: Scratch
    let postgres: PostgresServer
    let database: String
    let moto: MotoServer
    let bucket: String
    let arguments: [String]

    /// `endpoint` replaces moto's in the `--blobs` URL (a relay in front of it).
    init(endpoint: String? = nil) throws {
        scratch = try Scratch()
        postgres = try PostgresServer.shared()
        database = try postgres.createDatabase()
        moto = try MotoServer.shared()
        let bucket = try moto.createBucket()
        self.bucket = bucket
        let credentials = scratch.url("s3-credentials")
        try Data("AWS_ACCESS_KEY_ID=\(MotoServer.accessKey)\nAWS_SECRET_ACCESS_KEY=\(MotoServer.secretKey)\n".utf8)
            .write(to: credentials)
        let blobs =
            endpoint.map { "s3://\(bucket)/reg?endpoint=\($0)&region=us-east-1" }
            ?? moto.url(bucket: bucket, prefix: "reg")
        arguments = [
            "--metadata", postgres.url(database) + "?sslmode=disable", "--blobs", blobs,
            "--blobs-credentials-file", credentials.path,
        ]
    }

    /// A server on the shared storage with a data directory of its own; all but the first take the first's token.
    func servers(_ count: Int, extraArguments: [String] = []) throws -> [ServerProcess] {
        var servers: [ServerProcess] = []
        for index in 0..<count {
            servers.append(
                try ServerProcess(
                    data: scratch.url("replica-\(index)"), extraArguments: arguments + extraArguments,
                    adminToken: servers.first?.adminToken))
        }
        return servers
    }

    deinit { postgres.dropDatabase(database) }
}

/// Two servers on one new database of the shared PostgreSQL, each with a data directory of its own; the
/// database is dropped when the pair goes.
final class ServerPair {
    let postgres: PostgresServer
    let database: String
    let scratch: Scratch
    let first: ServerProcess
    let second: ServerProcess

    init() throws {
        postgres = try PostgresServer.shared()
        database = try postgres.createDatabase()
        let metadata = ["--metadata", postgres.url(database) + "?sslmode=disable"]
        scratch = try Scratch()
        first = try ServerProcess(data: scratch.url("first"), extraArguments: metadata)
        // The first server made the admin token in the database; the second finds it there.
        second = try ServerProcess(data: scratch.url("second"), extraArguments: metadata, adminToken: first.adminToken)
    }

    deinit {
        first.kill()
        second.kill()
        postgres.dropDatabase(database)
    }
}

/// HTTP statuses collected by one thread and read by another.
final class StatusLog: @unchecked Sendable {
    private let lock = NSLock()
    private var statuses: [Int] = []

    func append(_ status: Int) { lock.withLock { statuses.append(status) } }
    var all: [Int] { lock.withLock { statuses } }
    var last: Int? { lock.withLock { statuses.last } }
}
