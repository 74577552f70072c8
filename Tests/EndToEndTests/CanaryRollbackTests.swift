import Foundation
import ModelRegistryCore
import Testing

struct AliasTargetJSON: Decodable {
    var name: String
    var version: String
    var updatedBy: String
}

struct ResolvedJSON: Decodable {
    var version: String
    var digest: String
}

struct HistoryJSON: Decodable {
    struct Entry: Decodable {
        var action: String
        var fromVersion: String?
        var toVersion: String
        var actor: String
    }

    var entries: [Entry]
}

struct AuditJSON: Decodable {
    struct Entry: Decodable {
        var actor: String
        var action: String
        var target: String
        var detail: String?
    }

    var entries: [Entry]
}

/// The release flow through the binary: three versions, canary and prod, promote, rollback, deprecate,
/// delete, history and audit, and a race of compare-and-swap moves from separate processes.
@Suite(.serialized) struct CanaryRollbackTests {
    /// A registry holding org/qwen 1.0, 2.0 and 3.0, pushed with a write token named `ci`.
    struct Fixture {
        let scratch: Scratch
        let server: ServerProcess
        let ci: [String: String]
        let admin: [String: String]
        let digests: [String: String]
        let models: [String: URL]

        init() throws {
            scratch = try Scratch()
            server = try ServerProcess(data: scratch.url("data"))
            admin = server.environment
            let created = try modelreg(["token", "create", "--scope", "write", "--name", "ci"], environment: admin)
            try #require(created.status == 0, "\(created)")
            ci = [
                "MODELREG_URL": server.url,
                "MODELREG_TOKEN": created.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
            ]
            var digests: [String: String] = [:]
            var models: [String: URL] = [:]
            for (index, version) in ["1.0", "2.0", "3.0"].enumerated() {
                let directory = scratch.url("model-\(version)")
                try TestModel.write(to: directory, seed: UInt64(index + 1))
                let push = try modelreg(["push", directory.path, "org/qwen:\(version)", "--json"], environment: ci)
                try #require(push.status == 0, "\(push)")
                digests[version] = try push.json(PushReportJSON.self).digest
                models[version] = directory
            }
            self.digests = digests
            self.models = models
        }

        @discardableResult
        func run(
            _ arguments: [String], as environment: [String: String]? = nil, expect status: Int32 = 0,
            sourceLocation: SourceLocation = #_sourceLocation
        ) throws -> CommandResult {
            let result = try modelreg(arguments, environment: environment ?? ci)
            #expect(
                result.status == status, "\(arguments.joined(separator: " ")): \(result)",
                sourceLocation: sourceLocation)
            return result
        }

        func prod(sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
            try run(["show", "org/qwen@prod", "--json"], sourceLocation: sourceLocation).json(ResolvedJSON.self).version
        }

        /// Version 1.0 pinned by digest pulls byte-identical whatever the aliases do.
        func pullPinned(_ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let destination = scratch.url("pinned/\(name)")
            try run(
                ["pull", "org/qwen@\(digests["1.0"]!)", "--dest", destination.path], sourceLocation: sourceLocation)
            try expectSameTree(models["1.0"]!, destination, sourceLocation: sourceLocation)
        }
    }

    @Test func canaryPromoteRollbackHistoryAndAudit() throws {
        let fixture = try Fixture()
        try fixture.run(["alias", "set", "org/qwen", "prod", "1.0", "--expect-new"])
        try fixture.run(["alias", "set", "org/qwen", "canary", "2.0"])
        try fixture.pullPinned("after-set")
        let promoted = try fixture.run(["promote", "org/qwen", "canary", "prod", "--expect", "1.0", "--json"]).json(
            AliasTargetJSON.self)
        #expect(promoted.version == "2.0" && promoted.updatedBy == "ci")
        try fixture.pullPinned("after-promote")
        try fixture.run(["alias", "set", "org/qwen", "canary", "3.0", "--expect", "2.0"])
        try fixture.run(["promote", "org/qwen", "canary", "prod"])
        #expect(try fixture.prod() == "3.0")

        let first = try fixture.run(["rollback", "org/qwen", "prod"])
        #expect(first.stdout.contains("org/qwen@prod -> org/qwen:2.0"))
        try fixture.pullPinned("after-first-rollback")
        try fixture.run(["rollback", "org/qwen", "prod"])
        #expect(try fixture.prod() == "1.0")
        try fixture.pullPinned("after-second-rollback")
        let nothingLeft = try fixture.run(["rollback", "org/qwen", "prod"], expect: 7)
        #expect(nothingLeft.stderr.contains("no earlier target"))

        let history = try fixture.run(["alias", "history", "org/qwen", "prod", "--json"]).json(HistoryJSON.self)
        #expect(history.entries.map(\.action) == ["set", "promote", "promote", "rollback", "rollback"])
        #expect(history.entries.map(\.fromVersion) == [nil, "1.0", "2.0", "3.0", "2.0"])
        #expect(history.entries.map(\.toVersion) == ["1.0", "2.0", "3.0", "2.0", "1.0"])
        #expect(history.entries.allSatisfy { $0.actor == "ci" })
        let table = try fixture.run(["alias", "history", "org/qwen", "prod"]).stdout
        #expect(table.contains("WHO") && table.contains("rollback"))

        let audit = try fixture.run(["audit", "--model", "org/qwen", "--json"], as: fixture.admin).json(AuditJSON.self)
        #expect(
            audit.entries.reversed().map(\.action) == [
                "publish", "publish", "publish", "alias.set", "alias.set", "alias.promote", "alias.set",
                "alias.promote",
                "alias.rollback", "alias.rollback",
            ])
        #expect(audit.entries.first?.target == "org/qwen@prod" && audit.entries.first?.detail == "2.0 -> 1.0")
        #expect(audit.entries.allSatisfy { $0.actor == "ci" })
        let forbidden = try fixture.run(["audit"], expect: 4)
        #expect(forbidden.stderr.contains("admin"))
    }

    @Test func deprecateWarnsAndDeleteWaitsForAliases() throws {
        let fixture = try Fixture()
        try fixture.run(["alias", "set", "org/qwen", "prod", "1.0"])
        #expect(try fixture.run(["show", "org/qwen@latest", "--json"]).json(ResolvedJSON.self).version == "3.0")
        try fixture.run(["deprecate", "org/qwen:3.0", "--reason", "repeats itself"])
        let pull = try fixture.run(["pull", "org/qwen:3.0", "--dest", fixture.scratch.url("deprecated").path, "--json"])
        #expect(pull.stderr.contains("warning: org/qwen:3.0 is deprecated (repeats itself)"))
        try expectSameTree(fixture.models["3.0"]!, fixture.scratch.url("deprecated"))
        #expect(try fixture.run(["show", "org/qwen@latest", "--json"]).json(ResolvedJSON.self).version == "2.0")
        let listing = try fixture.run(["ls", "org/qwen"]).stdout
        #expect(listing.contains("deprecated: repeats itself"))
        let lines = listing.split(separator: "\n").map { $0.split(separator: " ").first.map(String.init) ?? "" }
        #expect(lines == ["VERSION", "3.0", "2.0", "1.0"], "newest first")

        let refused = try fixture.run(["delete", "org/qwen:1.0"], as: fixture.admin, expect: 7)
        #expect(refused.stderr.contains("@prod"))
        try fixture.run(["delete", "org/qwen:2.0"], expect: 4)
        try fixture.run(["alias", "set", "org/qwen", "prod", "2.0"])
        let deleted = try fixture.run(["delete", "org/qwen:1.0"], as: fixture.admin)
        #expect(deleted.stdout.contains("deleted org/qwen:1.0"))
        try fixture.run(
            ["pull", "org/qwen@\(fixture.digests["1.0"]!)", "--dest", fixture.scratch.url("gone").path], expect: 3)
        #expect(!FileManager.default.fileExists(atPath: fixture.scratch.url("gone").path))
        let again = try fixture.run(["push", fixture.models["2.0"]!.path, "org/qwen:1.0"], expect: 7)
        #expect(again.stderr.contains("never reused"))
        let audit = try fixture.run(["audit", "--json"], as: fixture.admin).json(AuditJSON.self)
        #expect(audit.entries.first?.action == "delete" && audit.entries.first?.target == "org/qwen:1.0")
        #expect(audit.entries.contains { $0.action == "deprecate" && $0.detail == "repeats itself" })
        #expect(audit.entries.contains { $0.action == "token.create" && $0.target == "ci" && $0.actor == "admin" })
    }

    @Test func concurrentCompareAndSwapMovesHaveExactlyOneWinner() throws {
        let fixture = try Fixture()
        try fixture.run(["alias", "set", "org/qwen", "prod", "1.0"])
        let contenders = try (0..<20).map { index in
            try CommandProcess(
                ["alias", "set", "org/qwen", "prod", index.isMultiple(of: 2) ? "2.0" : "3.0", "--expect", "1.0"],
                environment: fixture.ci
            )
        }
        let results = try contenders.map { try $0.wait() }
        let winners = results.filter { $0.status == 0 }
        #expect(winners.count == 1, "\(results.map(\.status))")
        #expect(results.filter { $0.status == 7 }.count == 19)
        #expect(results.filter { $0.status == 7 }.allSatisfy { $0.stderr.contains("expected it to point to 1.0") })
        let history = try fixture.run(["alias", "history", "org/qwen", "prod", "--json"]).json(HistoryJSON.self)
        #expect(history.entries.count == 2)
        let winner = try #require(history.entries.last)
        let prod = try fixture.prod()
        #expect(winner.fromVersion == "1.0" && winner.toVersion == prod)
        #expect(winners.first?.stdout.contains("org/qwen:\(winner.toVersion)") == true)
    }

    /// Issue 15.4: the compare-and-swap compares the whole target, so 32 movers of the pinned variant alone
    /// still have exactly one winner, with `--expect VERSION` and with `--expect VERSION@VARIANT`.
    @Test func variantMovesHaveExactlyOneWinnerToo() throws {
        let fixture = try Fixture()
        let variants = ["v0", "v1", "v2", "v3"]
        for (index, variant) in variants.enumerated() {
            let directory = fixture.scratch.url("variant-\(variant)")
            try TestModel.write(to: directory, seed: UInt64(10 + index))
            try fixture.run(["push", directory.path, "org/qwen:1.0", "--variant", variant])
        }
        try fixture.run(["alias", "set", "org/qwen", "race", "1.0"])
        var (expected, pinned): (String, String?) = ("1.0", nil)
        for round in 0..<2 {
            // Every mover changes the target: none asks for the variant already pinned (that would be a no-op).
            let choices = variants.filter { $0 != pinned }
            let movers = try (0..<32).map { index in
                try CommandProcess(
                    [
                        "alias", "set", "org/qwen", "race", "1.0", "--variant", choices[index % choices.count],
                        "--expect", expected,
                    ], environment: fixture.ci
                )
            }
            let results = try movers.map { try $0.wait() }
            let winners = results.indices.filter { results[$0].status == 0 }
            #expect(winners.count == 1, "round \(round): \(results.map(\.status))")
            #expect(
                results.filter { $0.status == 7 }.count == 31,
                "round \(round): \(results.filter { $0.status != 0 && $0.status != 7 })")
            let won = try #require(winners.first.map { choices[$0 % choices.count] })
            let listed =
                try JSONSerialization.jsonObject(
                    with: Data(try fixture.run(["alias", "ls", "org/qwen", "--json"]).stdout.utf8)) as? [String: Any]
            let race = (listed?["aliases"] as? [[String: Any]])?.first { $0["name"] as? String == "race" }
            #expect(
                race?["variant"] as? String == won,
                "round \(round): the winner's variant is pinned: \(String(describing: race))")
            (expected, pinned) = ("1.0@\(won)", won)
        }
        let history = try fixture.run(["alias", "history", "org/qwen", "race", "--json"]).json(HistoryJSON.self)
        #expect(history.entries.count == 3, "one set, then one winner a round")
    }
}

extension CanaryRollbackTests {
    /// The commands of the README's "Canary and rollback" walkthrough, as written, one argument list a line.
    static func walkthrough() throws -> [[String]] {
        let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("README.md")
        let text = try String(contentsOf: readme, encoding: .utf8)
        let section = try #require(text.range(of: "## Canary and rollback")).upperBound
        let block = try #require(text.range(of: "```sh\n", range: section..<text.endIndex))
        let end = try #require(text.range(of: "```", range: block.upperBound..<text.endIndex))
        return text[block.upperBound..<end.lowerBound].split(separator: "\n").map { line in
            let command = line.split(separator: "#", maxSplits: 1).first.map(String.init) ?? ""
            // Words, with "double quoted" words kept whole.
            return command.split(separator: "\"", omittingEmptySubsequences: false).enumerated().flatMap {
                index, part in
                index.isMultiple(of: 2) ? part.split(separator: " ").map(String.init) : [String(part)]
            }
        }
    }

    @Test func theReadmeWalkthroughWorksAsWritten() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        try TestModel.write(to: scratch.url("qwen-1.0"), seed: 10)
        try TestModel.write(to: scratch.url("qwen-1.1"), seed: 11)
        let commands = try Self.walkthrough()
        #expect(commands.count == 11)
        for command in commands {
            try #require(command.first == "modelreg", "\(command)")
            let result = try modelreg(Array(command.dropFirst()), environment: server.environment, in: scratch.root)
            try #require(result.status == 0, "\(command.joined(separator: " ")): \(result)")
        }
        let prod = try modelreg(["show", "qwen2-7b@prod", "--json"], environment: server.environment).json(
            ResolvedJSON.self)
        #expect(prod.version == "1.0")
        let history = try modelreg(["alias", "history", "qwen2-7b", "prod", "--json"], environment: server.environment)
            .json(HistoryJSON.self)
        #expect(history.entries.map(\.action) == ["set", "promote", "rollback"])
        let audit = try modelreg(["audit", "--json"], environment: server.environment).json(AuditJSON.self)
        #expect(audit.entries.first?.action == "deprecate")
    }
}
