import ArgumentParser
import Foundation
import RegistryClient

struct Inspect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect a local model directory or weight file as push would, without a registry.",
        discussion: "Reads only headers: safetensors and GGUF headers, config.json and sharding indexes."
    )

    @Argument(help: "A model directory, or one weight file.")
    var path: String

    @OptionGroup var output: OutputOptions

    func run() async throws {
        let report = try LocalFiles.inspect(at: URL(fileURLWithPath: path))
        output.print(report) { Presentation.inspection(report) }
    }
}
