import ArgumentParser
import Foundation
import ModelRegistryCore
import RegistryClient

@main
struct Modelreg: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "modelreg",
        abstract: "A registry and version manager for large-model artifacts.",
        version: "0.1.0",
        subcommands: [
            Serve.self, Push.self, Pull.self, List.self, Show.self, Variants.self, Inspect.self,
            Alias.self, Promote.self, Rollback.self, Deprecate.self, Delete.self, Audit.self, Token.self,
            DigestCommand.self,
        ]
    )

    /// Parses, runs, and turns a failure into one `error:` line and the documented exit status.
    static func main() async {
        let command: any ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            exit(withError: error)
        }
        do {
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                var command = command
                try command.run()
            }
        } catch let error as any Error & CustomStringConvertible where error is RegistryError || error is ClientError {
            FileHandle.standardError.write(Data("error: \(error.description)\n".utf8))
            Foundation.exit(ExitStatus.of(error).rawValue)
        } catch {
            exit(withError: error)
        }
    }
}

/// Where the registry is and which token to present.
struct ClientOptions: ParsableArguments {
    @Option(help: "Registry URL (default: $MODELREG_URL, else \(ClientConfiguration.defaultServer)).")
    var server: String?

    @Option(help: "Bearer token (default: $MODELREG_TOKEN).")
    var token: String?

    var connection: RegistryConnection {
        RegistryConnection(configuration: ClientConfiguration(server: server, token: token))
    }
}

struct OutputOptions: ParsableArguments {
    @Flag(help: "Print JSON instead of text.")
    var json = false

    func print(_ value: some Encodable, text: () -> String) {
        Swift.print(json ? Presentation.json(value) : text())
    }

    /// Warnings go to standard error even with `--json`: a script's log should show them.
    static let warn: @Sendable (String) -> Void = { line in FileHandle.standardError.write(Data((line + "\n").utf8)) }
}
