import Foundation
import TestServers
import Testing

/// The OpenAPI document is the contract: schemathesis generates requests from `/openapi.json` (valid ones
/// and invalid ones) against a live server holding a published model, and every check must pass: no 5xx,
/// statuses, headers, content types and schemas as documented, valid data accepted and invalid data refused,
/// a wrong method told 405, created resources available. `schemathesis.toml` beside this file names the few
/// refusals of valid data no schema can state. Bounded by examples per operation and time.
///
/// `MODELREG_CONTRACT_EXAMPLES` (default 20) sets the examples per operation, `MODELREG_CONTRACT_SECONDS`
/// (default 90) the time budget, `MODELREG_CONTRACT_SEED` repeats a run.
@Suite(.serialized) struct ContractTests {
    @Test func generatedRequestsGetNoServerErrorAndMatchTheDocument() throws {
        let environment = ProcessInfo.processInfo.environment
        let examples = environment["MODELREG_CONTRACT_EXAMPLES"] ?? "20"
        let seconds = environment["MODELREG_CONTRACT_SECONDS"] ?? "90"
        let seed = environment["MODELREG_CONTRACT_SEED"] ?? String(UInt32.random(in: 0...UInt32.max))
        let schemathesis = try #require(
            executableInPath("st"), "schemathesis is not installed: python3 -m pip install schemathesis (.ci/test does)"
        )
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        let model = scratch.url("model")
        try TestModel.write(to: model)
        let push = try modelreg(["push", model.path, "m:1.0"], environment: server.environment)
        try #require(push.status == 0, "\(push)")
        #expect(try modelreg(["alias", "set", "m", "prod", "1.0"], environment: server.environment).status == 0)

        // Run inside the scratch directory with the example database off, so nothing lands in the repository.
        let output = scratch.url("schemathesis.log")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        let process = Process()
        process.executableURL = schemathesis
        process.currentDirectoryURL = scratch.root
        let config = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "schemathesis.toml")
        process.arguments = [
            "--config-file", config.path, "run", "\(server.url)/openapi.json", "--url", server.url,
            "--header", "Authorization: Bearer \(server.adminToken)",
            "--max-examples", examples, "--max-time", seconds, "--seed", seed, "--request-timeout", "30",
            "--generation-database", "none", "--no-color", "--workers", "1",
            // Revoking the run's own admin token (the stateful phase finds its name in GET /v1/tokens) would
            // leave every later request a 401; token revocation has its own tests.
            "--exclude-name", "DELETE /v1/tokens/{name}",
        ]
        process.standardOutput = try FileHandle(forWritingTo: output)
        process.standardError = process.standardOutput
        let started = Date()
        try process.runAlone()
        process.waitUntilExit()
        let report = try String(contentsOf: output, encoding: .utf8)
        print(
            "contract: schemathesis seed \(seed), \(examples) examples an operation, \(Int(Date().timeIntervalSince(started))) s\n\(report.split(separator: "\n").suffix(8).joined(separator: "\n"))"
        )
        #expect(
            process.terminationStatus == 0, "schemathesis (MODELREG_CONTRACT_SEED=\(seed)) found problems:\n\(report)")
        // Generated requests may revoke the test's token, so liveness is asked without one.
        let live = try RawConnection(server.url).exchange(
            "GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(live.status == 200, "the server still serves: \(live.head)")
        server.stop()
    }

    func executableInPath(_ name: String) -> URL? {
        (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin").split(separator: ":")
            .map { URL(fileURLWithPath: String($0)).appendingPathComponent(name) }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }
}
