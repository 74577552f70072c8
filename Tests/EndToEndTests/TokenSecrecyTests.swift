import Foundation
import Testing

/// Tokens are stored and logged only as hashes: after a server has seen a write token used, a wrong token
/// refused and a token revoked, with every log line on (trace), no secret appears in the database (and
/// its WAL), anywhere in the data directory, or in the server's output.
@Suite(.serialized) struct TokenSecrecyTests {
    struct Created: Decodable { var token: String }

    @Test func noSecretIsStoredOrLoggedInClear() throws {
        let scratch = try Scratch()
        // The admin token comes from a file outside the data directory (the Kubernetes Secret case), so
        // the data directory holds no admin.token that would rightly contain it.
        let admin = "mrt_" + String(repeating: "s3cr3tAdm1n", count: 4)
        let adminFile = scratch.url("admin-secret")
        try Data((admin + "\n").utf8).write(to: adminFile)
        let data = scratch.url("data")
        let server = try ServerProcess(
            data: data, extraArguments: ["--admin-token-file", adminFile.path, "--log-level", "trace"],
            adminToken: admin
        )
        defer { server.kill() }

        let created = try modelreg(
            ["token", "create", "--scope", "write", "--name", "ci", "--json"], environment: server.environment)
        try #require(created.status == 0, "\(created)")
        let writeToken = try created.json(Created.self).token
        var asWriter = server.environment
        asWriter["MODELREG_TOKEN"] = writeToken
        let model = scratch.url("model")
        try TestModel.write(to: model)
        let push = try modelreg(["push", model.path, "tiny:1.0"], environment: asWriter)
        #expect(push.status == 0, "\(push)")

        let wrong = "mrt_" + String(repeating: "WrongGuess", count: 4)
        var asWrong = server.environment
        asWrong["MODELREG_TOKEN"] = wrong
        let refused = try modelreg(["ls"], environment: asWrong)
        #expect(refused.status == 4, "\(refused)")
        #expect(!refused.stderr.contains(wrong), "the CLI does not echo the token: \(refused.stderr)")
        #expect(try httpStatus(server.url + "/v1/models", headers: ["Authorization: Bearer \(wrong)"]) == 401)
        #expect(try httpStatus(server.url + "/v1/models", headers: ["Authorization: Basic \(wrong)"]) == 401)
        #expect(try httpStatus(server.url + "/v1/tokens", headers: ["Authorization: Bearer \(writeToken)"]) == 403)
        let revoke = try modelreg(["token", "revoke", "ci"], environment: server.environment)
        #expect(revoke.status == 0, "\(revoke)")
        #expect(try modelreg(["ls"], environment: asWriter).status == 4, "a revoked token is refused")

        let secrets = ["admin": admin, "write": writeToken, "wrong": wrong]
        // While the server runs the WAL holds the latest writes; after it stops, the database does.
        try expectNoSecret(secrets, under: data, log: server.logText)
        server.stop()
        try expectNoSecret(secrets, under: data, log: server.logText)
        #expect(
            server.logText.contains("/v1/models"),
            "the log did record the requests, so its silence about tokens means something")
    }

    private func expectNoSecret(
        _ secrets: [String: String], under data: URL, log: String, sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let files = regularFiles(data)
        #expect(files.contains("registry.sqlite"), sourceLocation: sourceLocation)
        for path in files {
            let bytes = try Data(contentsOf: data.appendingPathComponent(path))
            for (name, secret) in secrets {
                // The part after the prefix too, in case something stored it without.
                for needle in [secret, String(secret.dropFirst(4))] {
                    #expect(
                        bytes.range(of: Data(needle.utf8)) == nil, "the \(name) token is in \(path)",
                        sourceLocation: sourceLocation)
                }
            }
        }
        for (name, secret) in secrets {
            #expect(
                !log.contains(String(secret.dropFirst(4))), "the \(name) token is in the server's log",
                sourceLocation: sourceLocation)
        }
    }

    /// A token read from a file (a mounted Secret, newline and all) never appears on a command line.
    @Test func aTokenFileKeepsTheTokenOffTheCommandLine() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        defer { server.stop() }
        let file = scratch.url("token")
        try Data((server.adminToken + "\n").utf8).write(to: file)
        var environment = server.environment
        environment.removeValue(forKey: "MODELREG_TOKEN")

        let listed = try modelreg(["ls", "--token-file", file.path], environment: environment)
        #expect(listed.status == 0, "\(listed)")
        environment["MODELREG_TOKEN_FILE"] = file.path
        #expect(try modelreg(["ls"], environment: environment).status == 0, "MODELREG_TOKEN_FILE")
        environment.removeValue(forKey: "MODELREG_TOKEN_FILE")
        #expect(try modelreg(["ls"], environment: environment).status == 4, "without a token the admin routes refuse")

        let missing = try modelreg(["ls", "--token-file", scratch.url("absent").path], environment: environment)
        #expect(
            missing.status == 64 && missing.stderr.hasPrefix("error: ") && missing.stderr.contains("absent"),
            "\(missing)")
        try Data().write(to: file)
        let empty = try modelreg(["ls", "--token-file", file.path], environment: environment)
        #expect(empty.status == 64 && empty.stderr.contains("is empty"), "\(empty)")
    }
}
