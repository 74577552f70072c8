import CFuzzer
import CacheImage
import Foundation
import ModelFormats
import ModelRegistryCore

/// A manifest from outside either decodes to one whose canonical form decodes back to the same, or is refused
/// with a typed error; a decoded one can be laid out as a cache image and sized for a GPU without trapping.
func fuzz(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let manifest = try? Manifest.decode(Array(UnsafeBufferPointer(start: start, count: count))) else { return 0 }
    // Files keep the order they were sent in; the canonical form sorts them, so compare canonical forms.
    let canonical = manifest.canonicalJSON()
    guard let again = try? Manifest.decode(canonical), again.canonicalJSON() == canonical,
        again.digest == manifest.digest
    else {
        fatalError("the canonical form of a decoded manifest does not decode back to it")
    }
    for file in manifest.files {
        // What the file system sees: no absolute path, no empty, '.' or '..' part between the '/' bytes.
        let parts = file.path.value.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        guard !parts.contains(where: { $0.isEmpty || $0.elementsEqual([0x2e]) || $0.elementsEqual([0x2e, 0x2e]) })
        else {
            fatalError("'\(file.path)' escapes the directory it is written under")
        }
    }
    _ = manifest.totalSize
    let model = try! ModelName("org/fuzz")
    for layout in CacheImageLayout.allCases {
        let image = CacheImage(model: model, manifestDigest: manifest.digest, manifest: manifest, layout: layout)
        _ = image.parts(in: 0..<image.size)
    }
    _ = VariantFit.choose(
        [(.default, manifest)], budget: 24 << 30, contextLength: nil, concurrency: 4, kvCacheDtype: .fp8)
    return 0
}

/// libFuzzer's own `main` calls this in debug builds, where SwiftPM leaves `main` undefined.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt { fuzz(start, count) }

// Release builds link SwiftPM's entry point as `main`: it hands over to libFuzzer.
var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { start, count in fuzz(start, count) })
