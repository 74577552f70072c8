import CacheImage
import Foundation
import ModelRegistryCore
import TestServers
import Testing

/// A small variant held in memory: files and the blobs behind them.
struct Variant {
    var files: [String: [UInt8]]
    var executable: Set<String> = []

    var manifest: Manifest {
        get throws {
            Manifest(
                format: .safetensors,
                files: try files.map { path, bytes in
                    ManifestFile(
                        path: try ManifestPath(path), digest: Digest.of(bytes), size: Int64(bytes.count),
                        executable: executable.contains(path))
                })
        }
    }

    var blobs: [Digest: [UInt8]] {
        Dictionary(files.values.map { (Digest.of($0), $0) }, uniquingKeysWith: { first, _ in first })
    }

    func image(_ layout: CacheImageLayout, model: String = "org/tiny") throws -> CacheImage {
        let manifest = try manifest
        return CacheImage(
            model: try ModelName(model), manifestDigest: manifest.digest, manifest: manifest, layout: layout)
    }

    /// The archive's bytes, from the image's parts over `range`.
    func bytes(of image: CacheImage, _ range: Range<Int64>? = nil) -> [UInt8] {
        image.parts(in: range ?? 0..<image.size).flatMap { part -> [UInt8] in
            switch part {
            case .bytes(let bytes): Array(bytes)
            case .blob(let digest, let range): Array(blobs[digest]![Int(range.lowerBound)..<Int(range.upperBound)])
            }
        }
    }

    static let sample = Variant(
        files: [
            "model.safetensors": Array(repeating: 7, count: 1500),
            "config.json": Array(#"{"model_type":"llama"}"#.utf8),
            "tokenizer/tokenizer.json": Array("{}".utf8),
            "tokenizer/copy.json": Array("{}".utf8),
            "serving/run.sh": Array("#!/bin/sh\necho hi\n".utf8),
            String(repeating: "deep/", count: 30) + "long-name.bin": [1, 2, 3],
        ],
        executable: ["serving/run.sh"]
    )
}

func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("modelreg-image-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

@discardableResult
func python(_ script: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", script] + arguments
    let output = Pipe()
    let errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    try process.runAlone()
    let out = output.fileHandleForReading.readDataToEndOfFile()
    let err = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw RegistryError(.internalError, "python failed: \(String(decoding: err, as: UTF8.self))")
    }
    return String(decoding: out, as: UTF8.self)
}

@Suite struct CacheImageTests {
    @Test func theSameVariantAlwaysGivesTheSameBytes() throws {
        let variant = Variant.sample
        for layout in CacheImageLayout.allCases {
            let first = variant.bytes(of: try variant.image(layout))
            // Files listed in another order (another push order) make the same manifest and image.
            var reordered = Manifest(format: .safetensors, files: try variant.manifest.files.reversed())
            reordered.files.reverse()
            let image = CacheImage(
                model: try ModelName("org/tiny"), manifestDigest: try variant.manifest.digest, manifest: reordered,
                layout: layout)
            #expect(variant.bytes(of: image) == first)
            #expect(first.count % 512 == 0 && Int64(first.count) == image.size)
        }
        #expect(variant.bytes(of: try variant.image(.flat)) != variant.bytes(of: try variant.image(.hf)))
    }

    @Test func anyRangeIsTheSliceOfTheWholeArchive() throws {
        let variant = Variant.sample
        let image = try variant.image(.hf)
        let whole = variant.bytes(of: image)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let start = Int64.random(in: 0..<image.size, using: &generator)
            let end = Int64.random(in: start...image.size, using: &generator)
            #expect(variant.bytes(of: image, start..<end) == Array(whole[Int(start)..<Int(end)]))
        }
    }

    /// Python's tarfile, an independent reader, sees exactly the files with their modes, owner and time.
    @Test func pythonTarfileReadsTheFlatLayout() throws {
        let variant = Variant.sample
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let archive = directory.appendingPathComponent("image.tar")
        try Data(variant.bytes(of: try variant.image(.flat))).write(to: archive)
        let listing = try python(
            """
            import sys, tarfile, json, hashlib
            with tarfile.open(sys.argv[1]) as tar:
                print(json.dumps([[m.name, m.type.decode(), oct(m.mode), m.uid, m.gid, m.mtime,
                                   hashlib.sha256(tar.extractfile(m).read()).hexdigest() if m.isfile() else ""] for m in tar]))
            """, [archive.path])
        let members = try #require(try JSONSerialization.jsonObject(with: Data(listing.utf8)) as? [[Any]])
        let files = members.filter { $0[1] as? String == "0" }
        #expect(Set(files.map { $0[0] as! String }) == Set(variant.files.keys))
        for member in files {
            let path = member[0] as! String
            #expect(member[6] as? String == Digest.of(variant.files[path]!).hex)
            #expect(member[2] as? String == (variant.executable.contains(path) ? "0o755" : "0o644"))
        }
        #expect(members.allSatisfy { $0[3] as? Int == 0 && $0[4] as? Int == 0 && $0[5] as? Int == 0 })
        #expect(
            members.filter { $0[1] as? String == "5" }.count == 32,
            "tokenizer, serving and 30 nested 'deep' directories")
    }

    /// The hf layout, extracted by modelreg's extractor, is a Hugging Face cache the real huggingface_hub
    /// loads offline, and every file reads back identical.
    @Test func huggingFaceHubLoadsTheHFLayoutOffline() throws {
        let variant = Variant.sample
        let image = try variant.image(.hf)
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try extract(variant.bytes(of: image), image.entries, into: directory)
        let output = try python(
            """
            import os, sys, json, hashlib
            os.environ["HF_HUB_OFFLINE"] = "1"
            from huggingface_hub import snapshot_download
            path = snapshot_download("org/tiny", cache_dir=sys.argv[1], local_files_only=True)
            files = {}
            for base, _, names in os.walk(path):
                for name in names:
                    full = os.path.join(base, name)
                    files[os.path.relpath(full, path)] = hashlib.sha256(open(full, "rb").read()).hexdigest()
            print(json.dumps({"path": path, "files": files}))
            """, [directory.path])
        let result = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        let revision = HuggingFaceCache.revision(try variant.manifest.digest)
        #expect((result["path"] as? String)?.hasSuffix("models--org--tiny/snapshots/\(revision)") == true)
        let files = try #require(result["files"] as? [String: String])
        #expect(files == variant.files.mapValues { Digest.of($0).hex })
    }
}

func extract(_ bytes: [UInt8], _ entries: [CacheImage.Entry], into directory: URL, chunk: Int = 700) throws {
    var offset = 0
    try CacheImageExtractor(directory: directory, expecting: entries).extract {
        guard offset < bytes.count else { return nil }
        defer { offset += chunk }
        return Array(bytes[offset..<min(offset + chunk, bytes.count)])
    }
}
