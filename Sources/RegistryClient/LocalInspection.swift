import Foundation
import ModelFormats
import ModelRegistryCore

extension LocalFiles {
    /// Reads the headers of a directory's model files, as the registry will read them again at publish.
    public static func inspect(_ files: [LocalFile]) throws(RegistryError) -> Inspection {
        let urls = Dictionary(uniqueKeysWithValues: files.map { ($0.path, $0.url) })
        return try ModelInspector.inspect(paths: files.map(\.path)) { path throws(RegistryError) in
            try FileByteSource(path: urls[path]!.path)
        }
    }
}

/// `modelreg inspect`: what push would find in a directory or one file, and how long reading it took.
public struct LocalInspectionReport: Codable, Sendable {
    public var path: String
    public var quantization: Quantization?
    public var metadata: ModelMetadata?
    public var seconds: Double
}

extension LocalFiles {
    /// Inspects a model directory as push scans it, or a single weight file.
    public static func inspect(at url: URL) throws -> LocalInspectionReport {
        let start = ContinuousClock.now
        let files: [LocalFile]
        if let file = try single(url) {
            files = [file]
        } else {
            files = try scan(url)
        }
        let inspection = try inspect(files)
        return LocalInspectionReport(
            path: url.path, quantization: inspection.quantization, metadata: inspection.metadata,
            seconds: (ContinuousClock.now - start).seconds
        )
    }
}
