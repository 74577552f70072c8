import ModelRegistryCore

/// Any text either parses to a reference that prints back as itself, or is refused with a typed error.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: start, count: count), as: UTF8.self)
    guard let reference = try? ModelReference(parsing: text) else { return 0 }
    guard reference.description == text else {
        fatalError("'\(text)' parsed to \(reference), which prints differently")
    }
    guard let again = try? ModelReference(parsing: reference.description), again == reference else {
        fatalError("\(reference) does not parse back to itself")
    }
    if case .model = reference.target {
        guard (try? ModelReference.release(text)) == nil else { fatalError("'\(text)' names no release but release() took it") }
    }
    return 0
}
