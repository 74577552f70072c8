import ArgumentParser
import ModelRegistryCore
import RegistryClient

struct Variants: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the variants of a version side by side: format, quantization, size, parameters, GPU memory.",
        discussion:
            "Memory is the estimate at the model's own context (or --context) for --concurrency sequences; the README gives the formula."
    )

    @Argument(help: "NAME:VERSION.")
    var reference: String

    @Option(help: "GPU memory (24GiB, 80G, 16GB): mark the variants whose estimate fits, and the one --fit takes.")
    var fit: String?

    @OptionGroup var estimate: EstimateOptions
    @OptionGroup var client: ClientOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let parsed = try ModelReference(parsing: reference)
        guard case .version(let version) = parsed.target else {
            throw RegistryError(.invalidReference, "variants needs NAME:VERSION, not '\(reference)'")
        }
        let listing = try await client.connection.variants(
            parsed.name, version, contextLength: estimate.context, concurrency: estimate.concurrency,
            kvCacheDtype: estimate.cacheDtype,
            budget: try fit.map { text throws(RegistryError) in try ByteCount.parse(text) }
        )
        output.print(listing) { Presentation.variants(listing) }
    }
}
