import CFuzzer
import Foundation
import ModelRegistryCore

/// Any text either parses to a reference that prints back as itself, or is refused with a typed error.
func fuzz(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: start, count: count), as: UTF8.self)
    guard let reference = try? ModelReference(parsing: text) else { return 0 }
    guard reference.description == text else {
        fatalError("'\(text)' parsed to \(reference), which prints differently")
    }
    guard let again = try? ModelReference(parsing: reference.description), again == reference else {
        fatalError("\(reference) does not parse back to itself")
    }
    if case .model = reference.target {
        guard (try? ModelReference.release(text)) == nil else {
            fatalError("'\(text)' names no release but release() took it")
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
