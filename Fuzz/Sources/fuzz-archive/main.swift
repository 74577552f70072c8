import CFuzzer
import CacheImage
import Foundation
import ModelRegistryCore

/// The variant whose Hugging Face cache image the extractor expects: nested directories, an executable,
/// two files sharing a blob (so snapshot links share a target), and the generated `refs/main`.
enum Variant {
    static let files: [(path: String, content: [UInt8], executable: Bool)] = [
        ("config.json", Array(#"{"model_type":"llama"}"#.utf8), false),
        ("copy/config.json", Array(#"{"model_type":"llama"}"#.utf8), false),
        ("weights/model.safetensors", Array("weights".utf8), false),
        ("serving/run.sh", Array("#!/bin/sh\nexec true\n".utf8), true),
    ]
    static let blobs = Dictionary(
        files.map { (Digest.of($0.content), $0.content) }, uniquingKeysWith: { first, _ in first })
    static let image: CacheImage = {
        let manifest = Manifest(
            format: .safetensors,
            files: files.map {
                ManifestFile(
                    path: try! ManifestPath($0.path), digest: Digest.of($0.content), size: Int64($0.content.count),
                    executable: $0.executable)
            })
        return CacheImage(
            model: try! ModelName("org/fuzz"), manifestDigest: manifest.digest, manifest: manifest, layout: .hf)
    }()

    /// The genuine archive: what the seed corpus starts from.
    static var archive: [UInt8] {
        image.segments.flatMap { _, segment in
            switch segment {
            case .bytes(let bytes): bytes
            case .blob(let digest, _): blobs[digest]!
            }
        }
    }
}

/// Any bytes are extracted into a fresh directory inside a fresh parent. Whether the extractor accepts or
/// refuses them, nothing may appear beside that directory, and inside it only the image's own paths, its
/// links pointing where the image says.
func fuzz(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: start, count: count))
    var template = Array((NSTemporaryDirectory() + "/modelreg-fuzz-XXXXXX").utf8CString)
    guard let parent = mkdtemp(&template).map({ String(cString: $0) }) else { fatalError("mkdtemp: \(errno)") }
    defer { try? FileManager.default.removeItem(atPath: parent) }
    let root = parent + "/out"
    guard mkdir(root, 0o755) == 0 else { fatalError("mkdir: \(errno)") }

    var offset = 0
    // Chunks of an odd size, so entries and blocks straddle reads as they do from the network.
    let chunk = 777
    do {
        try CacheImageExtractor(directory: URL(fileURLWithPath: root), expecting: Variant.image.entries).extract {
            guard offset < bytes.count else { return nil }
            defer { offset += chunk }
            return Array(bytes[offset..<min(offset + chunk, bytes.count)])
        }
    } catch let error as RegistryError {
        guard error.code == .integrity || error.code == .storageFailure else {
            fatalError("unexpected refusal: \(error.code) \(error.message)")
        }
    } catch {
        fatalError("untyped error: \(error)")
    }

    let beside = (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? []
    guard beside == ["out"] else { fatalError("written beside the destination: \(beside)") }
    let expected = Dictionary(uniqueKeysWithValues: Variant.image.entries.map { ($0.path, $0.kind) })
    for path in FileManager.default.enumerator(atPath: root)?.compactMap({ $0 as? String }) ?? [] {
        guard let kind = expected[path] else { fatalError("extracted '\(path)', which the image does not hold") }
        var status = stat()
        guard lstat(root + "/" + path, &status) == 0 else { fatalError("lstat '\(path)': \(errno)") }
        switch kind {
        case .directory:
            guard status.st_mode & S_IFMT == S_IFDIR else { fatalError("'\(path)' is not a directory") }
        case .file:
            guard status.st_mode & S_IFMT == S_IFREG else { fatalError("'\(path)' is not a regular file") }
        case .symlink(let target):
            let actual = try? FileManager.default.destinationOfSymbolicLink(atPath: root + "/" + path)
            guard status.st_mode & S_IFMT == S_IFLNK, actual == target else {
                fatalError("'\(path)' links to \(actual ?? "nothing"), not \(target)")
            }
        }
    }
    return 0
}

/// `MODELREG_FUZZ_WRITE_SEED=FILE` writes the genuine archive to FILE instead of fuzzing: the seed script's
/// way to get an image that only this code can lay out. libFuzzer calls this before any input.
@_cdecl("LLVMFuzzerInitialize")
public func initialize(
    _ argc: UnsafeMutablePointer<CInt>?,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?
) -> CInt {
    if let seed = ProcessInfo.processInfo.environment["MODELREG_FUZZ_WRITE_SEED"] {
        exit(FileManager.default.createFile(atPath: seed, contents: Data(Variant.archive)) ? 0 : 1)
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
