import Foundation
import ModelFixtures
import ModelRegistryCore
import Testing

@testable import ModelFormats

/// Files written by the formats' own Python packages, read by modelreg and by the packages' readers.
@Suite struct ReferenceReaderTests {
    let directory: TemporaryDirectory
    let report: ReferenceReaders.Report
    var models: URL { directory.url.appendingPathComponent("models") }

    init() throws {
        directory = try TemporaryDirectory()
        report = try ReferenceReaders.generate(into: directory.url)
    }

    func source(_ path: String) throws -> FileByteSource {
        try FileByteSource(path: models.appendingPathComponent(path).path)
    }

    func inspect(_ subdirectory: String) throws -> Inspection {
        let root = models.appendingPathComponent(subdirectory)
        let paths = try FileManager.default.contentsOfDirectory(atPath: root.path).sorted()
        return try ModelInspector.inspect(paths: try paths.map { try ManifestPath($0) }) { path throws(RegistryError) in
            try FileByteSource(path: root.appendingPathComponent(path.value).path)
        }
    }

    @Test func safetensorsTensorsMatchTheReferenceReader() throws {
        #expect(report.safetensors.count == 4)
        for (path, expected) in report.safetensors {
            let header = try SafetensorsHeader.parse(try source(path), path: path)
            #expect(header.metadata == expected.metadata, "\(path)")
            #expect(Set(header.tensors.map(\.name)) == Set(expected.tensors.keys), "\(path)")
            for tensor in header.tensors {
                #expect(tensor.dtype == expected.tensors[tensor.name]?.dtype, "\(path) \(tensor.name)")
                #expect(tensor.shape == expected.tensors[tensor.name]?.shape, "\(path) \(tensor.name)")
            }
        }
    }

    @Test func parameterCountsAndDtypesOfASingleFileModel() throws {
        let expected = try #require(report.safetensors["single/model.safetensors"])
        let metadata = try #require(try inspect("single").metadata)
        #expect(metadata.parameterCount == expected.tensors.values.reduce(0) { $0 + $1.shape.reduce(1, *) })
        let expectedBytes: [String: Int64] = [
            "F16": 7168, "F32": 128, "F64": 12288, "I8": 32, "I64": 128, "I32": 4, "BOOL": 3,
        ]
        #expect(metadata.dtypeBytes == expectedBytes)
        #expect(metadata.weightFiles == ["model.safetensors": "safetensors"])
    }

    @Test func aShardedModelCountsEveryShardOnce() throws {
        let inspection = try inspect("sharded")
        let metadata = try #require(inspection.metadata)
        let shards = report.safetensors.filter { $0.key.hasPrefix("sharded/") }
        let expected = shards.values.flatMap(\.tensors.values).reduce(0) { $0 + $1.shape.reduce(1, *) }
        #expect(metadata.parameterCount == expected && expected == 12 * 32 * 32)
        #expect(metadata.dtypeBytes == ["F16": expected * 2])
        #expect(metadata.weightFiles.count == 3)
    }

    @Test func ggufHeaderMatchesTheReferenceReader() throws {
        let path = "gguf/model-q4_k_m.gguf"
        let expected = try #require(report.gguf[path])
        let header = try GGUFHeader.parse(try source(path), path: path)
        #expect(header.version == expected.version)
        #expect(header.architecture == expected.architecture)
        #expect(header.metadata["general.file_type"]?.integer == expected.fileType)
        #expect(header.architectureValue("context_length") == expected.contextLength)
        #expect(header.metadata["general.quantization_version"]?.integer == expected.quantizationVersion)
        #expect(header.metadata["tokenizer.ggml.tokens"] == .array(elementType: 8, count: UInt64(expected.tokenCount)))
        #expect(Set(header.tensors.map(\.name)) == Set(expected.tensors.keys))
        for tensor in header.tensors {
            let reference = try #require(expected.tensors[tensor.name])
            #expect(tensor.type.name == reference.type, "\(tensor.name)")
            #expect(tensor.dimensions == reference.shape, "\(tensor.name)")
            #expect(tensor.elementCount == reference.elements, "\(tensor.name)")
            #expect(tensor.byteCount == reference.bytes, "\(tensor.name)")
        }
        #expect(
            Set(header.tensors.map(\.type.name)).isSuperset(of: [
                "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_0", "Q4_0", "IQ4_XS", "F16", "F32",
            ]))
    }

    @Test func ggufMetadataAndQuantization() throws {
        let expected = try #require(report.gguf["gguf/model-q4_k_m.gguf"])
        let inspection = try inspect("gguf")
        #expect(inspection.quantization == Quantization(method: "q4_k_m", bits: 4))
        let metadata = try #require(inspection.metadata)
        #expect(metadata.architecture == "llama")
        #expect(metadata.parameterCount == expected.tensors.values.reduce(0) { $0 + $1.elements })
        #expect(metadata.weightBytes == expected.tensors.values.reduce(0) { $0 + $1.bytes })
        #expect(
            metadata.contextLength == 2048 && metadata.layers == 2 && metadata.kvHeads == 2 && metadata.headDim == 64)
        // 2 (K and V) × 2 layers × 2 KV heads × 64 head dim × 2 bytes (F16 cache)
        #expect(metadata.kvCacheBytesPerToken == 1024)
    }
}
