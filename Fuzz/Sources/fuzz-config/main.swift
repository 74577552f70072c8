import CFuzzer
import Foundation
import ModelFormats
import ModelRegistryCore

/// A config.json of any content is inspected as `push` and the registry's publish check do it: it gives
/// metadata, or a typed error naming the file.
func fuzz(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let source = MemoryByteSource(Array(UnsafeBufferPointer(start: start, count: count)))
    let path = try! ManifestPath("config.json")
    do {
        _ = try ModelInspector.inspect(paths: [path]) { _ throws(RegistryError) in source }
    } catch {
        guard error.code == .invalidModelFile, error.message.hasPrefix("invalid model file config.json: ") else {
            fatalError("refused without naming the file: \(error.code) \(error.message)")
        }
    }
    return 0
}

/// libFuzzer's own `main` calls this in debug builds, where SwiftPM leaves `main` undefined.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt { fuzz(start, count) }

// Release builds link SwiftPM's entry point as `main`: it hands over to libFuzzer.
var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { start, count in fuzz(start, count) })
