import ArgumentParser
import CacheImage
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

    @Option(help: "Files hashed and uploaded at once.")
    var jobs = Pusher.defaultJobs

    @Flag(help: "Hash every file, ignoring and not updating the hash cache ($XDG_CACHE_HOME/modelreg/hashes.json).")
    var noHashCache = false

    @Flag(help: "Follow symbolic links whose targets lie outside the directory (refused by default).")
    var followExternalSymlinks = false

    @OptionGroup var inspection: InspectionOptions
    @OptionGroup var client: ClientOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var progress: ProgressOptions

    func run() async throws {
        let parsed = try ModelReference(parsing: reference)
        guard case .version(let version) = parsed.target else {
            throw RegistryError(.invalidReference, "push needs NAME:VERSION, not '\(reference)'")
        }
        let pusher = Pusher(
            connection: try client.connection, jobs: jobs,
            hashCache: noHashCache ? nil : HashCache.defaultURL().map(HashCache.init(url:)),
            progress: progress.style(json: output.json), log: ProgressOptions.standardError
        )
        let report = try await pusher.push(
            directory: URL(fileURLWithPath: directory), name: parsed.name, version: version,
            variant: try VariantName(variant), inspect: !inspection.noInspect, quantization: inspection.declared,
            derivedFrom: try inspection.derivedFromVariant(), followExternalLinks: followExternalSymlinks
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

    @Option(help: "Files downloaded at once.")
    var jobs = Puller.defaultJobs

    @OptionGroup var fit: FitOptions
    @OptionGroup var client: ClientOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var progress: ProgressOptions

    func run() async throws {
        let connection = try client.connection
        let (release, chosenVariant) = try await fit.choose(reference, variant: variant, connection: connection)
        let puller = Puller(
            connection: connection, jobs: jobs,
            progress: TransferProgress(
                style: progress.style(json: output.json), verb: "pulling", write: ProgressOptions.standardError)
        )
        let report = try await puller.pull(
            release, variant: chosenVariant, destination: URL(fileURLWithPath: dest), replace: force,
            warn: OutputOptions.warn
        )
        output.print(report) { Presentation.pull(report) }
    }
}

struct Fetch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Place a release's cache image in a directory: the init container's command.",
        discussion: """
            Streams the pre-built image, verifies every file while writing it into a staging directory inside \
            --dest (which may be a mount point under a read-only root), then moves the files in and writes a \
            marker (.modelreg-fetch.json) last. If --dest already holds the same variant, exits 0 at once; a \
            --dest holding other files than an earlier fetch is refused unless --force. A killed fetch resumes \
            where it stopped; network failures (a body that stalls included) are retried, and --timeout bounds the \
            whole command. With --cache, files already in that node-level directory are checked and hard-linked \
            (copied across mounts), and new ones are added to it (read-only).
            """
    )

    @Argument(help: "Release to fetch: NAME:VERSION, NAME@ALIAS or NAME@sha256:<digest>.")
    var reference: String

    @Option(help: "Variant to fetch (default: the alias's, the only one, or 'default').")
    var variant: String?

    @Option(help: "Destination directory (replaced when it holds another variant).")
    var dest: String

    @Flag(help: "Replace a destination that holds other files than an earlier fetch.")
    var force = false

    @Option(
        help:
            "flat (files as pushed), hf (a Hugging Face hub cache: point HF_HUB_CACHE at --dest) or models (the files under models/)."
    )
    var layout: String = CacheImageLayout.flat.rawValue

    @Option(help: "Node-level cache directory shared by pods.")
    var cache: String?

    @Flag(help: "Rehash every file, also when the destination is already in place.")
    var verify = false

    @Option(
        help:
            "Give up after this long, whatever the network does (90s, 10m, 1h); what was staged is kept for the next run."
    )
    var timeout = "30m"

    @OptionGroup var fit: FitOptions
    @OptionGroup var client: ClientOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var progress: ProgressOptions

    func run() async throws {
        guard let layout = CacheImageLayout(rawValue: layout) else {
            throw ValidationError(
                "--layout must be \(CacheImageLayout.allCases.map(\.rawValue).joined(separator: ", ")), not '\(layout)'"
            )
        }
        let connection = try client.connection
        let (release, chosenVariant) = try await fit.choose(reference, variant: variant, connection: connection)
        let options = Fetcher.Options(
            layout: layout, cache: cache.map { URL(fileURLWithPath: $0) }, verify: verify,
            timeout: try DurationText.positive(timeout),
            force: force
        )
        let report = try await Fetcher(connection: connection).fetch(
            release, variant: chosenVariant, destination: URL(fileURLWithPath: dest), options: options,
            progress: TransferProgress(
                style: progress.style(json: output.json), verb: "fetching", write: ProgressOptions.standardError),
            warn: OutputOptions.warn
        )
        output.print(report) { Presentation.fetch(report) }
    }
}

/// How a transfer shows its progress on standard error: bars on a terminal, a line every
/// `--progress-interval` seconds otherwise, nothing with `--quiet` or `--json`.
struct ProgressOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Print no progress, only the result.")
    var quiet = false

    @Option(help: "Seconds between progress lines when standard error is not a terminal.")
    var progressInterval = 10

    func style(json: Bool) -> ProgressStyle {
        if quiet || json { return .none }
        return isatty(STDERR_FILENO) == 1 ? .bars : .lines(every: .seconds(max(1, progressInterval)))
    }

    static let standardError: @Sendable (String) -> Void = { text in FileHandle.standardError.write(Data(text.utf8)) }
}

struct DigestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "digest",
        abstract: "Print the sha256 digest of local files, as the registry names their blobs.",
        discussion: "Reads each file in large chunks; with --jobs, several files at once."
    )

    @Argument(help: "Files to hash.")
    var files: [String]

    @Option(help: "Files hashed at once.")
    var jobs = Pusher.defaultJobs

    @OptionGroup var output: OutputOptions

    struct Listing: Encodable {
        struct File: Encodable {
            var path: String
            var digest: Digest
        }

        var files: [File]
    }

    func run() async throws {
        let digests = try await LocalFiles.digests(of: files.map { URL(fileURLWithPath: $0) }, jobs: jobs)
        let listing = Listing(files: zip(files, digests).map { Listing.File(path: $0, digest: $1) })
        output.print(listing) { listing.files.map { "\($0.digest)  \($0.path)" }.joined(separator: "\n") }
    }
}
