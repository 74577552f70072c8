import ArgumentParser
import Foundation
import ModelRegistryCore
import RegistryClient

struct Push: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Push a model directory as NAME:VERSION (one variant).",
        discussion: "Only blobs the registry lacks are sent. The variant defaults to 'default'."
    )

    @Argument(help: "Directory holding the model files.")
    var directory: String

    @Argument(help: "NAME:VERSION to publish.")
    var reference: String

    @Option(help: "Variant name (fp16, awq-int4, ...).")
    var variant: String = VariantName.default.value

    @Option(help: "Files transferred at once.")
    var jobs = 4

    @OptionGroup var inspection: InspectionOptions
    @OptionGroup var client: ClientOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let parsed = try ModelReference(parsing: reference)
        guard case .version(let version) = parsed.target else {
            throw RegistryError(.invalidReference, "push needs NAME:VERSION, not '\(reference)'")
        }
        let report = try await Pusher(connection: client.connection, jobs: jobs).push(
            directory: URL(fileURLWithPath: directory), name: parsed.name, version: version,
            variant: try VariantName(variant), inspect: !inspection.noInspect, quantization: inspection.declared,
            derivedFrom: try inspection.derivedFromVariant(), log: output.progress
        )
        output.print(report) { Presentation.push(report) }
    }
}

struct Pull: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Download a release into a directory, verifying every file.",
        discussion: "REF is NAME:VERSION, NAME@ALIAS or NAME@sha256:<digest>. The directory appears only when complete."
    )

    @Argument(help: "Release to pull.")
    var reference: String

    @Option(help: "Variant to pull (default: the alias's, the only one, or 'default').")
    var variant: String?

    @Option(help: "Destination directory.")
    var dest: String

    @Flag(help: "Replace a non-empty destination.")
    var force = false

    @Option(help: "Files transferred at once.")
    var jobs = 4

    @OptionGroup var fit: FitOptions
    @OptionGroup var client: ClientOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        var release = try ModelReference.release(reference)
        var chosenVariant = try variant.map { text throws(RegistryError) in try VariantName(text) }
        // An explicit --variant always wins over --fit.
        if let budget = fit.fit, chosenVariant == nil {
            let decision = try await client.connection.fittingVariant(
                release, budget: try ByteCount.parse(budget), contextLength: fit.estimate.context, concurrency: fit.estimate.concurrency
            )
            // Said even with --json: the choice is part of what happened.
            FileHandle.standardError.write(Data((Presentation.fit(decision) + "\n").utf8))
            // The version the alias pointed at when the choice was made; a digest stays pinned.
            if case .alias = release.target { release = ModelReference(name: decision.model, target: .version(decision.version)) }
            chosenVariant = decision.chosen
        }
        let report = try await Puller(connection: client.connection, jobs: jobs).pull(
            release,
            variant: chosenVariant,
            destination: URL(fileURLWithPath: dest), replace: force,
            log: output.progress, warn: OutputOptions.warn
        )
        output.print(report) { Presentation.pull(report) }
    }
}
