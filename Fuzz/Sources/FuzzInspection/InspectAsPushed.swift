import ModelFormats
import ModelRegistryCore

/// A file of any content, named `name`, is inspected as `push` and the registry's publish check do it: it
/// gives metadata, or an `INVALID_MODEL_FILE` error naming the file; anything else stops the fuzzer.
public func inspectAsPushed(_ start: UnsafePointer<UInt8>?, _ count: Int, named name: String) -> CInt {
    let source = MemoryByteSource(Array(UnsafeBufferPointer(start: start, count: count)))
    let path = try! ManifestPath(name)
    do {
        _ = try ModelInspector.inspect(paths: [path]) { _ throws(RegistryError) in source }
    } catch {
        guard error.code == .invalidModelFile, error.message.hasPrefix("invalid model file \(name): ") else {
            fatalError("refused without naming the file: \(error.code) \(error.message)")
        }
    }
    return 0
}
