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
            Serve.self, Push.self, Pull.self, Fetch.self, List.self, Show.self, Variants.self, Inspect.self, Plan.self,
            Kubernetes.self,
            Alias.self, Promote.self, Rollback.self, Deprecate.self, Delete.self, Audit.self, Token.self,
            Backup.self, Restore.self, Migrate.self, GC.self, Verify.self, Repair.self, DigestCommand.self,
        ]
    )

    /// Parses, runs, and turns a failure into one `error:` line and the documented exit status.
    static func main() async {
        #if canImport(Glibc)
            // Transfers allocate a 1 MiB buffer a chunk on one thread and free it on another once it is sent or
            // written. With glibc's adaptive threshold those end up in the heap, which then keeps growing with
            // the size of the transfer (2 GiB push: 178 MiB peak); mapped and unmapped, memory stays flat
            // (57 MiB). Measured in bench/RESULTS.md.
            _ = glibcMallopt(mmapThreshold, 128 * 1024)
        #endif
        let command: any ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            failParsing(error)
        }
        do {
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                var command = command
                try command.run()
            }
        } catch let error as any Error & CustomStringConvertible where error is RegistryError || error is ClientError {
            fail(
                error.description, status: ExitStatus.of(error),
                code: (error as? RegistryError)?.code.rawValue ?? "NETWORK")
        } catch let error where ClientError(transportFailure: error) != nil {
            // A body cut after its request succeeded surfaces as NIO's own error, not as a `ClientError`.
            let failure = ClientError(transportFailure: error)!
            fail(failure.description, status: ExitStatus.of(failure), code: "NETWORK")
        } catch {
            failParsing(error)
        }
    }

    /// One `error:` line on standard error and, under `--json`, the same as a JSON object on standard
    /// output, so a script reading the output always gets JSON.
    static func fail(_ message: String, status: ExitStatus, code: String) -> Never {
        FileHandle.standardError.write(Data("error: \(message)\n".utf8))
        if CommandLine.arguments.dropFirst().contains("--json") {
            print(Presentation.json(ErrorReport(error: .init(code: code, message: message, exitCode: status.rawValue))))
        }
        Foundation.exit(status.rawValue)
    }

    /// Help and version go out as the argument parser writes them; a bad argument is one `error:` line
    /// pointing at the command's help, with the usage exit status; anything else one line with status 1.
    static func failParsing(_ error: any Error) -> Never {
        let status = exitCode(for: error)
        guard status != .success, !(error is ExitCode) else { exit(withError: error) }
        let first = message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
        let text = first.hasPrefix("Error: ") ? String(first.dropFirst("Error: ".count)) : first
        guard status == .validationFailure else { fail(text, status: .failure, code: "FAILURE") }
        // The (sub)command the arguments name, for its help.
        var words: [String] = []
        var commands = configuration.subcommands
        for word in CommandLine.arguments.dropFirst() {
            guard let command = commands.first(where: { $0._commandName == word }) else { break }
            words.append(word)
            commands = command.configuration.subcommands
        }
        fail(
            "\(text) (see `\((["modelreg"] + words + ["--help"]).joined(separator: " "))`)", status: .usage,
            code: "USAGE")
    }
}

/// What `--json` prints on standard output when a command fails.
struct ErrorReport: Encodable {
    struct Detail: Encodable {
        var code: String
        var message: String
        var exitCode: Int32
    }

    var error: Detail
}

/// Where the registry is and which token to present.
struct ClientOptions: ParsableArguments {
    @Option(help: "Registry URL (default: $MODELREG_URL, else \(ClientConfiguration.defaultServer)).")
    var server: String?

    @Option(
        help:
            "Bearer token (default: $MODELREG_TOKEN). Visible to `ps` while the command runs: prefer --token-file or MODELREG_TOKEN."
    )
    var token: String?

    @Option(
        help: ArgumentHelp(
            "File holding the bearer token, such as a mounted Secret (default: $MODELREG_TOKEN_FILE).",
            valueName: "file"))
    var tokenFile: String?

    @Option(
        help:
            "PEM file of the CA certificate to trust for an https registry with a private CA (default: $MODELREG_CA_CERT)."
    )
    var caCert: String?

    var connection: RegistryConnection {
        get throws {
            try RegistryConnection(
                configuration: ClientConfiguration(
                    server: server, token: token, tokenFile: tokenFile, caCertificate: caCert))
        }
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

    /// Progress lines go to standard error, so standard output stays clean; none with `--json`.
    var progress: @Sendable (String) -> Void {
        if json { return { _ in } }
        return { line in FileHandle.standardError.write(Data((line + "\n").utf8)) }
    }
}

#if canImport(Glibc)
    /// glibc's mallopt(3); the Glibc module leaves out malloc.h, which declares it.
    @_silgen_name("mallopt") private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
    /// `M_MMAP_THRESHOLD` in malloc.h.
    private let mmapThreshold: Int32 = -3
#endif
