import CFuzzer
import Foundation
import FuzzInspection

/// A model.safetensors of any content, inspected as `push` does it (see `inspectAsPushed`).
func fuzz(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    inspectAsPushed(start, count, named: "model.safetensors")
}

/// libFuzzer's own `main` calls this in debug builds, where SwiftPM leaves `main` undefined.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt { fuzz(start, count) }

// Release builds link SwiftPM's entry point as `main`: it hands over to libFuzzer.
var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { start, count in fuzz(start, count) })
