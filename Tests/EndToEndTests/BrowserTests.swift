import Foundation
import ModelRegistryCore
import Testing

/// The web pages at `/ui` in a real browser: Debian's Chromium and chromedriver, driven by Selenium
/// (Browser/walkthrough.py), against the real binary. Screenshots of every page are kept in
/// `.build/<config>/test-artifacts/ui/` (outside git).
@Suite struct BrowserTests {
    struct CreatedToken: Decodable { let token: String }

    /// org/tiny: 1 (with a card) and 2 (`default`, `awq-int4`), prod -> 1, canary -> 2; `hostile`, whose file
    /// name, card and deprecation reason try to inject markup and script.
    static func populate(_ scratch: Scratch, _ server: ServerProcess) throws {
        let first = scratch.url("first")
        let second = scratch.url("second")
        let quantized = scratch.url("quantized")
        let hostile = scratch.url("hostile")
        try TestModel.write(to: first, seed: 1)
        try TestModel.write(to: second, seed: 2)
        try InspectionTests.writeAWQ(to: quantized)
        try TestModel.write(to: hostile, seed: 3)
        try Data("# Tiny\n\nThe **first** version.\n".utf8).write(to: first.appendingPathComponent("README.md"))
        try Data("<img>\n".utf8).write(to: hostile.appendingPathComponent("<img src=x onerror=alert(1)>.txt"))
        try Data(
            "# Card\n\n<script>alert('card')</script>\n\n[click](javascript:alert('link')) <img src=x onerror=alert(2)>\n"
                .utf8
        ).write(to: hostile.appendingPathComponent("README.md"))
        for arguments in [
            ["push", first.path, "org/tiny:1"], ["push", second.path, "org/tiny:2"],
            ["push", quantized.path, "org/tiny:2", "--variant", "awq-int4"], ["push", hostile.path, "hostile:1"],
            ["alias", "set", "org/tiny", "prod", "1"], ["alias", "set", "org/tiny", "canary", "2"],
            ["deprecate", "hostile:1", "--reason", "<script>alert('reason')</script>"],
        ] {
            let result = try modelreg(arguments, environment: server.environment)
            try #require(result.status == 0, "\(arguments): \(result)")
        }
    }

    static func token(_ name: String, scope: String, _ server: ServerProcess) throws -> String {
        let created = try modelreg(
            ["token", "create", "--name", name, "--scope", scope, "--json"], environment: server.environment)
        try #require(created.status == 0, "\(created)")
        return try created.json(CreatedToken.self).token
    }

    @Test func signInPromoteRollBackAndAStaleFormInChromium() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        try Self.populate(scratch, server)
        let screenshots = modelregBinary.deletingLastPathComponent().appendingPathComponent("test-artifacts/ui")
        try FileManager.default.createDirectory(at: screenshots, withIntermediateDirectories: true)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Browser/walkthrough.py")
        let result = try CommandProcess(
            ["python3", script.path],
            environment: [
                "UI_BASE": server.url, "UI_SCREENSHOTS": screenshots.path, "MODELREG_BIN": modelregBinary.path,
                "UI_TOKEN_ADMIN": server.adminToken,
                "UI_TOKEN_WRITE": try Self.token("ui-writer", scope: "write", server),
                "UI_TOKEN_READ": try Self.token("ui-reader", scope: "read", server),
                "XDG_CACHE_HOME": scratch.url("cache").path, "HOME": scratch.root.path,
            ],
            in: scratch.root, executable: URL(fileURLWithPath: "/usr/bin/env")
        ).wait()
        #expect(result.status == 0 && result.stdout.hasSuffix("ok\n"), "\(result)\nserver log: \(server.logText)")
        // What the browser did, as the CLI sees it afterwards.
        let aliases = try modelreg(["alias", "ls", "org/tiny"], environment: server.environment)
        #expect(aliases.stdout.contains("prod") && aliases.stdout.contains("canary"), "\(aliases)")
        for page in ["sign-in", "catalogue", "model", "model-calculator", "variant", "audit", "model-phone"] {
            #expect(
                FileManager.default.fileExists(atPath: screenshots.appendingPathComponent(page + ".png").path),
                "no screenshot of \(page)")
        }
    }

    /// Without `--anonymous-read` a page without a session goes to the sign-in form; with it, the pages are
    /// readable but nothing can be changed. `/` leads to the pages either way.
    @Test func anonymousReadersSeeThePagesOnlyWhenTheServerAllowsIt() throws {
        let scratch = try Scratch()
        let closed = try ServerProcess(data: scratch.url("closed"))
        let open = try ServerProcess(data: scratch.url("open"), extraArguments: ["--anonymous-read"])
        try Self.populate(scratch, open)
        func get(_ server: ServerProcess, _ path: String) throws -> String {
            try shell("curl -s -i '\(server.url)\(path)'").output
        }
        #expect(try get(closed, "/").contains("Location: /ui\r\n"))
        #expect(try get(closed, "/ui").contains("Location: /ui/sign-in?next=/ui\r\n"))
        #expect(try get(closed, "/ui/models/org/tiny").contains("Location: /ui/sign-in?next=/ui/models/org/tiny\r\n"))
        let catalogue = try get(open, "/ui")
        #expect(catalogue.hasPrefix("HTTP/1.1 200"), "\(catalogue)")
        #expect(
            catalogue.contains("content-security-policy: default-src 'none'")
                || catalogue.contains("Content-Security-Policy: default-src 'none'"))
        #expect(catalogue.contains("href=\"/ui/models/org/tiny\""))
        #expect(!catalogue.contains("method=\"post\""), "an anonymous reader is offered a form")
        let model = try get(open, "/ui/models/org/tiny")
        #expect(model.contains("id=\"aliases\"") && !model.contains("form.rollback") && !model.contains("Roll back"))
        #expect(try get(open, "/ui/audit").contains("HTTP/1.1 401"))
        #expect(try get(open, "/ui/models/org/nothing").contains("HTTP/1.1 404"))
        let post = try shell(
            "curl -s -i -X POST --data 'do=rollback&expect=1&csrf=x' '\(open.url)/ui/models/org/tiny/aliases/prod'"
        ).output
        #expect(post.hasPrefix("HTTP/1.1 401"), "\(post)")
        let aliases = try modelreg(["alias", "ls", "org/tiny"], environment: open.environment)
        #expect(aliases.stdout.contains("prod") && aliases.stdout.contains(" 1"), "\(aliases)")
    }
}
