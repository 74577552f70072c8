import Foundation
import ModelRegistryCore
import TestServers
import Testing

@Suite struct ManifestTests {
    let a = "sha256:" + String(repeating: "a", count: 64)
    let b = "sha256:" + String(repeating: "b", count: 64)

    func file(_ path: String, _ digest: String, _ size: Int64) throws -> ManifestFile {
        ManifestFile(path: try ManifestPath(path), digest: try Digest(parsing: digest), size: size)
    }

    @Test func digestIgnoresFileOrder() throws {
        let one = Manifest(format: .safetensors, files: [try file("b.json", a, 1), try file("a.safetensors", b, 2)])
        let two = Manifest(format: .safetensors, files: [try file("a.safetensors", b, 2), try file("b.json", a, 1)])
        #expect(one.canonicalJSON() == two.canonicalJSON())
        #expect(one.digest == two.digest)
        #expect(one.totalSize == 3)
    }

    @Test func canonicalFormIsCompactAndSorted() throws {
        let manifest = Manifest(format: .gguf, files: [try file("m.gguf", a, 5)])
        let text = String(decoding: manifest.canonicalJSON(), as: UTF8.self)
        #expect(
            text
                == #"{"files":[{"digest":"\#(a)","executable":false,"path":"m.gguf","size":5}],"format":"gguf","schemaVersion":1}"#
        )
        #expect(try Manifest.decode(manifest.canonicalJSON()) == manifest)
    }

    @Test func contentChangesTheDigest() throws {
        let one = Manifest(format: .other, files: [try file("x", a, 1)])
        let two = Manifest(
            format: .other, files: [try file("x", a, 1)], quantization: Quantization(method: "awq", bits: 4))
        #expect(one.digest != two.digest)
    }

    @Test(arguments: [
        (#"{"schemaVersion":1,"format":"other","files":[]}"#, RegistryError.Code.invalidManifest),
        (
            #"{"schemaVersion":2,"format":"other","files":[{"path":"x","digest":"DIGEST","size":1,"executable":false}]}"#,
            .invalidManifest
        ),
        (
            #"{"schemaVersion":1,"format":"other","files":[{"path":"../x","digest":"DIGEST","size":1,"executable":false}]}"#,
            .invalidPath
        ),
        (
            #"{"schemaVersion":1,"format":"other","files":[{"path":"x","digest":"sha256:12","size":1,"executable":false}]}"#,
            .invalidManifest
        ),
        (
            #"{"schemaVersion":1,"format":"other","files":[{"path":"x","digest":"DIGEST","size":-1,"executable":false}]}"#,
            .invalidManifest
        ),
        (
            #"{"schemaVersion":1,"format":"other","files":[{"path":"x","digest":"DIGEST","size":1,"executable":false},{"path":"x","digest":"DIGEST","size":1,"executable":false}]}"#,
            .invalidManifest
        ),
        (
            #"{"schemaVersion":1,"format":"other","files":[{"path":"x","digest":"DIGEST","size":1,"executable":false},{"path":"x/y","digest":"DIGEST","size":1,"executable":false}]}"#,
            .invalidManifest
        ),
        (#"{"schemaVersion":1,"format":"floppy","files":[]}"#, .invalidManifest),
        (
            #"{"schemaVersion":1,"format":"other","files":[{"path":".modelreg-fetch.json","digest":"DIGEST","size":1,"executable":false}]}"#,
            .invalidPath
        ),
        (
            #"{"schemaVersion":1,"format":"other","files":[{"path":".modelreg-staging-x/y","digest":"DIGEST","size":1,"executable":false}]}"#,
            .invalidPath
        ),
        ("not json", .invalidManifest),
    ])
    func rejectsBadManifests(_ json: String, _ code: RegistryError.Code) {
        let bytes = Array(json.replacingOccurrences(of: "DIGEST", with: a).utf8)
        let error = #expect(throws: RegistryError.self) { try Manifest.decode(bytes) }
        #expect(error?.code == code)
    }

    /// Sizes that summed past Int64.max trapped `totalSize` and the cache image layout.
    @Test func fileSizesAreCappedSoTheirSumCannotOverflow() throws {
        let huge = #"{"path":"PATH","digest":"DIGEST","size":4611686018427387904,"executable":false}"#
        let json =
            #"{"schemaVersion":1,"format":"other","files":[\#(huge.replacingOccurrences(of: "PATH", with: "a")),\#(huge.replacingOccurrences(of: "PATH", with: "b"))]}"#
        let bytes = Array(json.replacingOccurrences(of: "DIGEST", with: a).utf8)
        let error = #expect(throws: RegistryError.self) { try Manifest.decode(bytes) }
        #expect(error?.code == .invalidManifest)
        #expect(
            error?.message.contains("'a' claims 4611686018427387904 bytes, over the 17592186044416-byte limit") == true,
            "\(String(describing: error))")
        let atTheLimit = Manifest(
            format: .other, files: [try file("a", a, Manifest.maxFileSize), try file("b", b, Manifest.maxFileSize)])
        let decoded = try Manifest.decode(atTheLimit.canonicalJSON())
        #expect(decoded.totalSize == 2 * Manifest.maxFileSize)
    }

    @Test func detectsFormats() throws {
        #expect(
            ModelFormat.detect(paths: [try ManifestPath("config.json"), try ManifestPath("model-00001.safetensors")])
                == .safetensors)
        #expect(ModelFormat.detect(paths: [try ManifestPath("q4.gguf")]) == .gguf)
        #expect(ModelFormat.detect(paths: [try ManifestPath("pytorch_model.bin")]) == .pytorchBin)
        #expect(ModelFormat.detect(paths: [try ManifestPath("README.md")]) == .other)
    }
}

/// The digest of a manifest is forever: its canonical bytes must not move with a Foundation release. A manifest
/// with non-ASCII paths and metadata keys is compared with an independent canonical form (Python's `json`,
/// keys and file paths in code point order, compact, UTF-8 unescaped) and with the digest recorded here.
@Suite struct ManifestDigestGoldenTests {
    static let golden = "90c086fc1fcfe449af226c9e0d8d2cb24601e911cb98cb5a218dcf927415149c"

    static func manifest() throws -> Manifest {
        let paths = [
            "日本語/重み.safetensors", "Ελληνικά/config.json", "Z.bin", "a10.bin", "a9.bin", "e\u{301}.bin", "é.txt",
            "ｚ.bin", "😀/x.bin", "tokenizer.json",
        ]
        let files = try paths.enumerated().map { index, path in
            ManifestFile(
                path: try ManifestPath(path), digest: Digest.of(Array(path.utf8)), size: Int64(index * 1000),
                executable: index == 2)
        }
        let metadata = ModelMetadata(
            architecture: "Qwen2ForCausalLM", parameterCount: 7_615_616_512,
            dtypeBytes: ["BF16": 1_000, "F16": 2_000, "I8": 30, "U8": 4], weightBytes: 3_034,
            torchDtype: "bfloat16", contextLength: 32_768, layers: 28, hiddenSize: 3_584, attentionHeads: 28,
            kvHeads: 4, headDim: 128, kvCacheBytesPerToken: 57_344,
            weightFiles: ["日本語/重み.safetensors": "safetensors", "a10.bin": "pytorch-bin", "Z.bin": "pytorch-bin"])
        return Manifest(
            format: .safetensors, files: files,
            quantization: Quantization(method: "awq", bits: 4, groupSize: 128, derivedFrom: try VariantName("fp16")),
            metadata: metadata)
    }

    @Test func canonicalBytesAreAnIndependentCanonicalForm() throws {
        let bytes = try Self.manifest().canonicalJSON()
        let script = """
            import json, sys
            raw = sys.stdin.buffer.read()
            document = json.loads(raw)
            paths = [f["path"].encode() for f in document["files"]]
            assert paths == sorted(paths), paths
            canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
            sys.stdout.write("same" if canonical == raw else "differs:\\n" + canonical.decode() + "\\n" + raw.decode())
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        try process.runAlone()
        input.fileHandleForWriting.write(Data(bytes))
        try input.fileHandleForWriting.close()
        let answer = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0 && answer == "same", "\(answer)")
    }

    @Test func theDigestIsTheOneRecorded() throws {
        let manifest = try Self.manifest()
        #expect(manifest.digest.hex == Self.golden, "\(String(decoding: manifest.canonicalJSON(), as: UTF8.self))")
        #expect(try Manifest.decode(manifest.canonicalJSON()).digest == manifest.digest)
    }
}
