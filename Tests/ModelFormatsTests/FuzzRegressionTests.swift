import Foundation
import ModelFixtures
import ModelRegistryCore
import Testing

@testable import ModelFormats

/// Inputs on the paths the fuzz targets in Fuzz/ drive: each used to trap the process instead of being
/// refused with an error naming the file, or taken with what it can tell.
@Suite struct FuzzRegressionTests {
    static func inspect(_ path: String, _ bytes: [UInt8]) throws(RegistryError) -> Inspection {
        let source = MemoryByteSource(bytes)
        return try ModelInspector.inspect(paths: [try ManifestPath(path)]) { _ throws(RegistryError) in source }
    }

    static func error(_ path: String, _ bytes: [UInt8]) throws -> RegistryError {
        let error = try #require(throws: RegistryError.self) { try inspect(path, bytes) }
        #expect(error.code == .invalidModelFile)
        #expect(error.message.hasPrefix("invalid model file \(path): "), "\(error.message)")
        return error
    }

    /// A head count of 0 divided the hidden size by zero for the head dim.
    @Test func aGGUFHeadCountOfZeroCountsAsAbsent() throws {
        var gguf = GGUFWriter()
        gguf.set("general.architecture", .string("llama"))
        gguf.set("llama.embedding_length", .u32(64))
        gguf.set("llama.block_count", .u32(2))
        gguf.set("llama.attention.head_count", .u32(0))
        gguf.add("w", "F32", [4])
        let inspection = try Self.inspect("model.gguf", gguf.bytes())
        let metadata = try #require(inspection.metadata)
        #expect(metadata.attentionHeads == nil && metadata.headDim == nil && metadata.kvCacheBytesPerToken == nil)
        #expect(metadata.hiddenSize == 64 && metadata.layers == 2)
    }

    /// Layers × KV heads × head dim overflowed Int64 computing the KV-cache bytes a token.
    @Test func absurdGGUFCountsAreRefusedNamingTheFile() throws {
        var gguf = GGUFWriter()
        gguf.set("general.architecture", .string("llama"))
        gguf.set("llama.block_count", .u32(.max))
        gguf.set("llama.attention.head_count_kv", .u32(.max))
        gguf.set("llama.attention.key_length", .u32(.max))
        gguf.add("w", "F32", [4])
        let error = try Self.error("weights/model.gguf", gguf.bytes())
        #expect(error.message.contains("absurd KV-cache size"), "\(error.message)")
    }

    @Test func absurdConfigCountsAreRefusedNamingTheFile() throws {
        let config = #"{"num_hidden_layers": 4611686018427387904, "num_attention_heads": 8, "hidden_size": 4096}"#
        let error = try Self.error("config.json", Array(config.utf8))
        #expect(error.message.contains("4611686018427387904 layers"), "\(error.message)")
    }

    /// A tensor count the file size allows (size / 32) reserved room for that many tensor infos before
    /// reading one: 2^30 of them in a 1 TiB sparse file asked for ~90 GB and aborted.
    @Test func aTensorCountOverTheLimitIsRefusedBeforeAllocating() throws {
        let message = try CorruptionTests.ggufError(CorruptionTests.ggufPrefix(tensors: 1 << 30), size: 1 << 40)
        #expect(message.contains("tensor count 1073741824 is over the limit of 1048576"), "\(message)")
    }

    /// A manifest's metadata is whatever the registry serves: sums that overflow saturate, so such a variant
    /// never fits a budget.
    @Test func anEstimateOfAbsurdMetadataSaturates() {
        let metadata = ModelMetadata(
            parameterCount: nil, dtypeBytes: [:], weightBytes: .max, kvCacheBytesPerToken: .max, weightFiles: [:])
        let estimate = MemoryEstimate(metadata: metadata, concurrency: 4)
        #expect(estimate.totalBytes == .max && estimate.kvCacheBytes == .max)
        let choice = VariantFit.choose(
            [(.default, Manifest(format: .other, files: [], metadata: metadata))], budget: .max - 1, contextLength: nil,
            concurrency: 1)
        #expect(choice.chosen == nil)
    }
}
