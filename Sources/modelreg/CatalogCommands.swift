import ArgumentParser
import ModelRegistryCore
import RegistryAPI
import RegistryClient

struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls", abstract: "List models, or with NAME the versions of one model, newest first."
    )

    @Argument(help: "Model whose versions to list.") var name: String?

    @OptionGroup var client: ClientOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        if let name {
            let detail = try await client.connection.model(try ModelName(name))
            output.print(VersionList(versions: detail.versions)) { Presentation.versions(detail) }
        } else {
            let models = try await client.connection.listModels()
            output.print(ModelList(models: models)) { Presentation.models(models) }
        }
    }
}

struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a model, a version, or one variant's files.",
        discussion:
            "NAME shows versions and aliases; NAME:VERSION its variants; with --variant, or for NAME@ALIAS and NAME@sha256:<digest>, the files."
    )

    @Argument(help: "NAME, NAME:VERSION, NAME@ALIAS or NAME@sha256:<digest>.")
    var reference: String

    @Option(help: "Variant to show.")
    var variant: String?

    @OptionGroup var client: ClientOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let parsed = try ModelReference(parsing: reference)
        let variant = try variant.map { text throws(RegistryError) in try VariantName(text) }
        let connection = try client.connection
        switch parsed.target {
        case .model:
            let detail = try await connection.model(parsed.name)
            output.print(detail) { Presentation.model(detail) }
        case .version(let version) where variant == nil:
            let summary = try await connection.version(parsed.name, version)
            output.print(summary) { Presentation.version(parsed.name, summary) }
        default:
            let resolved = try await connection.resolve(parsed, variant: variant)
            let shown = ShownManifest(
                resolved: resolved, images: try await connection.imageStatus(resolved.model, resolved.digest),
                servingProfile: try await connection.servingProfile(of: resolved.manifest))
            output.print(shown) { Presentation.manifest(shown) }
        }
    }
}

struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage API tokens (needs an admin token).",
        subcommands: [Create.self, ListTokens.self, Revoke.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a token; its secret is printed once.")

        @Option(help: "Scope: read, write or admin.") var scope: String
        @Option(help: "A name to recognise the token by.") var name: String

        @OptionGroup var client: ClientOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let created = try await client.connection.createToken(
                name: try TokenLabel(name), scope: try TokenScope(parsing: scope))
            output.print(created) { created.token }
        }
    }

    struct ListTokens: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list", abstract: "List tokens (never their secrets).")

        @OptionGroup var client: ClientOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let tokens = try await client.connection.tokens()
            output.print(TokenList(tokens: tokens)) { Presentation.tokens(tokens) }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token by name.")

        @Argument(help: "Token name.") var name: String

        @OptionGroup var client: ClientOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let record = try await client.connection.revokeToken(try TokenLabel(name))
            output.print(record) { "revoked token '\(record.name)'" }
        }
    }
}
