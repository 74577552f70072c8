import ArgumentParser
import ModelRegistryCore
import RegistryAPI
import RegistryClient

/// The compare-and-swap options every alias move takes.
struct ExpectationOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Move only if the alias points to exactly this target now: VERSION (no variant pinned) or VERSION@VARIANT (else exit 7 and name its target).",
            valueName: "target"
        ))
    var expect: String?

    @Flag(help: "Move only if the alias does not exist yet.")
    var expectNew = false

    func expectation() throws -> AliasExpectation? {
        switch (expect, expectNew) {
        case (nil, false): return nil
        case (nil, true): return .absent
        case (let target?, false):
            let parts = target.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false)
            return .target(
                try VersionName(String(parts[0])), variant: try parts.count == 2 ? VariantName(String(parts[1])) : nil)
        case (_?, true): throw ValidationError("--expect and --expect-new exclude each other")
        }
    }
}

struct Alias: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Point aliases such as prod and canary at versions.",
        subcommands: [Set.self, ListAliases.self, History.self]
    )

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Point ALIAS of NAME at VERSION (and optionally a variant).")

        @Argument(help: "Model name.") var name: String
        @Argument(help: "Alias (prod, canary, ...).") var alias: String
        @Argument(help: "Version the alias points to.") var version: String
        @Option(help: "Variant the alias pins.") var variant: String?

        @OptionGroup var expectation: ExpectationOptions
        @OptionGroup var client: ClientOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let model = try ModelName(name)
            let target = try await client.connection.setAlias(
                model, try AliasName(alias), version: try VersionName(version),
                variant: try variant.map { text throws(RegistryError) in try VariantName(text) },
                expectation: try expectation.expectation()
            )
            output.print(target) { Presentation.moved(model, target) }
        }
    }

    struct ListAliases: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the aliases of a model.")

        @Argument(help: "Model name.") var name: String

        @OptionGroup var client: ClientOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let aliases = try await client.connection.aliases(try ModelName(name))
            output.print(AliasList(aliases: aliases)) { Presentation.aliases(aliases) }
        }
    }

    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every move of an alias, oldest first: when, who, from, to.")

        @Argument(help: "Model name.") var name: String
        @Argument(help: "Alias.") var alias: String

        @OptionGroup var client: ClientOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let history = try await client.connection.aliasHistory(try ModelName(name), try AliasName(alias))
            output.print(history) { Presentation.history(history) }
        }
    }
}

struct Promote: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Point TO_ALIAS at whatever FROM_ALIAS points to (for example canary to prod)."
    )

    @Argument(help: "Model name.") var name: String
    @Argument(help: "Alias whose target is promoted (canary).") var fromAlias: String
    @Argument(help: "Alias that moves (prod).") var toAlias: String

    @OptionGroup var expectation: ExpectationOptions
    @OptionGroup var client: ClientOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let model = try ModelName(name)
        let target = try await client.connection.promote(
            model, try AliasName(toAlias), from: try AliasName(fromAlias), expectation: try expectation.expectation()
        )
        output.print(target) { Presentation.moved(model, target) }
    }
}

struct Rollback: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Move an alias back to its previous target, in one step and without moving data.",
        discussion: "Each rollback goes one move further back; --to goes back to an earlier target directly."
    )

    @Argument(help: "Model name.") var name: String
    @Argument(help: "Alias to roll back.") var alias: String
    @Option(help: "An earlier target of the alias to go back to.") var to: String?

    @OptionGroup var expectation: ExpectationOptions
    @OptionGroup var client: ClientOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let model = try ModelName(name)
        let target = try await client.connection.rollback(
            model, try AliasName(alias), to: try to.map { text throws(RegistryError) in try VersionName(text) },
            expectation: try expectation.expectation()
        )
        output.print(target) { Presentation.moved(model, target) }
    }
}

/// `NAME:VERSION` for the commands that act on one version.
private func versionReference(_ text: String, command: String) throws -> (ModelName, VersionName) {
    let parsed = try ModelReference(parsing: text)
    guard case .version(let version) = parsed.target else {
        throw RegistryError(.invalidReference, "\(command) needs NAME:VERSION, not '\(text)'")
    }
    return (parsed.name, version)
}

struct Deprecate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Flag a version as deprecated: still pullable, warned about, skipped by @latest."
    )

    @Argument(help: "NAME:VERSION.") var reference: String
    @Option(help: "Why, shown to everyone who pulls it.") var reason: String?

    @OptionGroup var client: ClientOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let (model, version) = try versionReference(reference, command: "deprecate")
        let summary = try await client.connection.deprecate(model, version, reason: reason)
        output.print(summary) {
            "deprecated \(model):\(version)" + (summary.deprecation?.reason.map { ": \($0)" } ?? "")
        }
    }
}

struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete a version (admin token); refused while an alias points to it.",
        discussion: "The version name is never reused. Blobs no other version uses are freed by garbage collection."
    )

    @Argument(help: "NAME:VERSION.") var reference: String

    @OptionGroup var client: ClientOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let (model, version) = try versionReference(reference, command: "delete")
        let deleted = try await client.connection.deleteVersion(model, version)
        output.print(deleted) { Presentation.deleted(deleted) }
    }
}

struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Who changed what, newest first (admin token): pushes, alias moves, deprecations, deletes, tokens."
    )

    @Option(help: "Only changes to this model.") var model: String?
    @Option(help: "At most this many entries (1 to \(AuditQuery.maxLimit)).") var limit = 100

    @OptionGroup var client: ClientOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard (1...AuditQuery.maxLimit).contains(limit) else {
            throw ValidationError("--limit must be from 1 to \(AuditQuery.maxLimit), not \(limit)")
        }
    }

    func run() async throws {
        let entries = try await client.connection.auditLog(
            model: try model.map { text throws(RegistryError) in try ModelName(text) }, limit: limit
        )
        output.print(AuditLog(entries: entries)) { Presentation.audit(entries) }
    }
}
