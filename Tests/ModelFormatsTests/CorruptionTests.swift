import Foundation
import ModelFixtures
import ModelRegistryCore
import Testing

@testable import ModelFormats

/// Truncated, corrupt and forged files are refused with an error that names the file and what is wrong,
/// and no input, however mangled, crashes the parsers or makes them allocate what the file claims.
@Suite struct CorruptionTests {
    /// A file of `size` bytes that starts with `prefix` and is zeros after it, without holding the zeros.
    struct PaddedSource: ByteSource {
        var prefix: [UInt8]
        var size: Int64

        func read(at offset: Int64, length: Int) throws(RegistryError) -> [UInt8] {
            let end = min(size, offset + Int64(length))
            guard offset < end else { return [] }
            return (offset..<end).map { $0 < prefix.count ? prefix[Int($0)] : 0 }
        }
    }

    static func u64(_ value: UInt64) -> [UInt8] { withUnsafeBytes(of: value.littleEndian, Array.init) }

    /// A safetensors file whose header is the given JSON and whose data section is `dataBytes` long.
    static func safetensors(header json: String, dataBytes: Int = 0) -> [UInt8] {
        u64(UInt64(json.utf8.count)) + Array(json.utf8) + [UInt8](repeating: 0, count: dataBytes)
    }

    static func safetensorsError(_ bytes: [UInt8], path: String = "model.safetensors") throws -> String {
        let error = try #require(throws: RegistryError.self) {
            try SafetensorsHeader.parse(MemoryByteSource(bytes), path: path)
        }
        #expect(error.code == .invalidModelFile)
        #expect(error.message.hasPrefix("invalid model file \(path): "), "\(error.message)")
        return error.message
    }

    @Test func safetensorsRefusals() throws {
        #expect(try Self.safetensorsError([1, 2, 3], path: "shard/a.safetensors").contains("runs past the end"))
        #expect(
            try Self.safetensorsError(Self.u64(1 << 60) + Array("{}".utf8)).contains(
                "header length 1152921504606846976 is past the end"))
        #expect(try Self.safetensorsError(Self.u64(.max) + Array("{}".utf8)).contains("past the end"))
        #expect(try Self.safetensorsError(Self.safetensors(header: "[1, 2]")).contains("does not start with '{'"))
        #expect(try Self.safetensorsError(Self.safetensors(header: "{\"a\": ")).contains("not valid JSON"))
        let unknown = #"{"w": {"dtype": "F17", "shape": [2], "data_offsets": [0, 4]}}"#
        #expect(
            try Self.safetensorsError(Self.safetensors(header: unknown, dataBytes: 4)).contains("unknown dtype 'F17'"))
        let overlapping =
            #"{"a": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]}, "b": {"dtype": "F16", "shape": [4], "data_offsets": [4, 12]}}"#
        #expect(
            try Self.safetensorsError(Self.safetensors(header: overlapping, dataBytes: 12)).contains(
                "tensor 'b' overlaps"))
        let gap =
            #"{"a": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}, "b": {"dtype": "F16", "shape": [2], "data_offsets": [8, 12]}}"#
        #expect(try Self.safetensorsError(Self.safetensors(header: gap, dataBytes: 12)).contains("leaving a gap"))
        let outOfRange = #"{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}"#
        #expect(
            try Self.safetensorsError(Self.safetensors(header: outOfRange, dataBytes: 8)).contains(
                "past the end of the file"))
        #expect(
            try Self.safetensorsError(Self.safetensors(header: outOfRange, dataBytes: 20)).contains(
                "cover 16 data bytes but the file holds 20"))
        let mismatched = #"{"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}"#
        #expect(
            try Self.safetensorsError(Self.safetensors(header: mismatched, dataBytes: 16)).contains(
                "needs 12 bytes but its offsets span 16"))
        let absurd = #"{"a": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 16]}}"#
        #expect(try Self.safetensorsError(Self.safetensors(header: absurd, dataBytes: 16)).contains("absurd shape"))
        let negative = #"{"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}"#
        #expect(try Self.safetensorsError(Self.safetensors(header: negative, dataBytes: 4)).contains("non-negative"))
        let badMetadata = #"{"__metadata__": {"format": 1}}"#
        #expect(try Self.safetensorsError(Self.safetensors(header: badMetadata)).contains("__metadata__"))
    }

    /// The header scanner reads what a general JSON parser reads: escaped and non-ASCII names, unknown keys
    /// with nested values, any whitespace; and refuses what JSON or the format forbids.
    @Test func safetensorsHeadersAreReadAsJSON() throws {
        let header = """
            { "caf\\u00e9.w\\ud83d\\ude00" :{"shape":[ 2 ] ,"extra":{"a":[1,{"b":null}],"c":-1.5e3},"dtype":"F16",
            "data_offsets":[0,4]},"Ὀδυσσεύς \\"q\\"\\n":{"dtype":"U8","shape":[],"data_offsets":[4,5]},
            "__metadata__":{"format":"pt","note":"a\\/b\\t"}}\t
            """
        let parsed = try SafetensorsHeader.parse(
            MemoryByteSource(Self.safetensors(header: header, dataBytes: 5)), path: "m.safetensors")
        let reference = try #require(try JSONSerialization.jsonObject(with: Data(header.utf8)) as? [String: Any])
        #expect(Set(parsed.tensors.map(\.name)) == Set(reference.keys).subtracting(["__metadata__"]))
        #expect(parsed.tensors.map(\.name).contains("café.w😀"))
        #expect(parsed.metadata == reference["__metadata__"] as? [String: String])
        #expect(parsed.tensors.map(\.shape).sorted { $0.count < $1.count } == [[], [2]])

        let refused: [(String, String)] = [
            (
                #"{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "a": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}}"#,
                "listed twice"
            ),
            (#"{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}} x"#, "not valid JSON"),
            (#"{"a": {"dtype": "U8", "shape": [1.0], "data_offsets": [0, 1]}}"#, "non-negative"),
            (#"{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},}"#, "not valid JSON"),
            (#"{"\ud800": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}"#, "not valid JSON"),
            (#"{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1], "x": tru}}"#, "not valid JSON"),
            (#"{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1], "x": 01}}"#, "not valid JSON"),
            ("{\"a\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [0, 1], \"x\": \"\t\"}}", "not valid JSON"),
            (#"{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1, 2]}}"#, "invalid data_offsets"),
            (
                #"{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "__metadata__": "x"}"#,
                "__metadata__ is not an object"
            ),
            (
                #"{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1], "x": "#
                    + String(repeating: "[", count: 100) + String(repeating: "]", count: 100) + "}}",
                "nests deeper"
            ),
        ]
        for (json, message) in refused {
            let error = try Self.safetensorsError(Self.safetensors(header: json, dataBytes: 2))
            #expect(error.contains(message), "\(json): \(error)")
        }
        let notUTF8 = Self.safetensors(header: #"{"a": 1}"#).map { $0 == UInt8(ascii: "a") ? 0xFF : $0 }
        #expect(try Self.safetensorsError(notUTF8).contains("not UTF-8"))
    }

    @Test func aHeaderLengthOverTheLimitIsRefusedBeforeReadingIt() throws {
        let source = PaddedSource(prefix: Self.u64(200_000_000) + Array("{".utf8), size: 1 << 40)
        let error = try #require(throws: RegistryError.self) {
            try SafetensorsHeader.parse(source, path: "big.safetensors")
        }
        #expect(error.message.contains("over the 100000000-byte limit"))
    }

    static func ggufError(_ bytes: [UInt8], size: Int64? = nil) throws -> String {
        let source = PaddedSource(prefix: bytes, size: size ?? Int64(bytes.count))
        let error = try #require(throws: RegistryError.self) { try GGUFHeader.parse(source, path: "m.gguf") }
        #expect(error.code == .invalidModelFile)
        #expect(error.message.hasPrefix("invalid model file m.gguf: "), "\(error.message)")
        return error.message
    }

    static func ggufPrefix(version: UInt32 = 3, tensors: UInt64 = 0, values: UInt64 = 0) -> [UInt8] {
        Array("GGUF".utf8) + withUnsafeBytes(of: version.littleEndian, Array.init) + u64(tensors) + u64(values)
    }

    @Test func ggufRefusals() throws {
        #expect(try Self.ggufError(Array("GGML".utf8) + [0, 0, 0, 0]).contains("magic"))
        #expect(try Self.ggufError(Self.ggufPrefix(version: 1)).contains("version 1 is not supported"))
        #expect(try Self.ggufError(Self.ggufPrefix(version: UInt32(3).byteSwapped)).contains("big-endian"))
        #expect(
            try Self.ggufError(Self.ggufPrefix(tensors: 1 << 60)).contains(
                "tensor count 1152921504606846976 is more than the file could hold"))
        #expect(try Self.ggufError(Self.ggufPrefix(values: 1 << 60)).contains("metadata count"))
        #expect(try Self.ggufError(Array(Self.ggufPrefix(values: 1).prefix(20))).contains("runs past the end"))
        // A key claiming 2^60 bytes, in a file large enough for the counts.
        #expect(
            try Self.ggufError(Self.ggufPrefix(values: 1) + Self.u64(1 << 60), size: 4096).contains("absurd length"))
        // Arrays claiming 2^40 and 2^62 four-byte elements.
        let array = Self.ggufPrefix(values: 1) + Self.u64(1) + Array("k".utf8) + [9, 0, 0, 0, 4, 0, 0, 0]
        #expect(try Self.ggufError(array + Self.u64(1 << 40), size: 4096).contains("runs past the end"))
        #expect(try Self.ggufError(array + Self.u64(1 << 62), size: 4096).contains("absurd array length"))
        let strings =
            Self.ggufPrefix(values: 1) + Self.u64(1) + Array("k".utf8) + [9, 0, 0, 0, 8, 0, 0, 0] + Self.u64(1 << 62)
        #expect(try Self.ggufError(strings, size: 4096).contains("absurd array length"))
        let unknownValue = Self.ggufPrefix(values: 1) + Self.u64(1) + Array("k".utf8) + [13, 0, 0, 0]
        #expect(try Self.ggufError(unknownValue, size: 4096).contains("unknown value type 13"))

        var unknownType = GGUFWriter()
        unknownType.add("t", "F32", [4])
        var bytes = unknownType.header()
        // The tensor's type field follows the name (8 + 1 bytes), the dimension count (4) and one dimension (8).
        let typeOffset = 24 + 9 + 4 + 8
        bytes.replaceSubrange(typeOffset..<typeOffset + 4, with: [99, 0, 0, 0])
        #expect(try Self.ggufError(bytes + [UInt8](repeating: 0, count: 16)).contains("unknown ggml type 99"))

        var block = GGUFWriter()
        block.add("t", "Q4_K", [100, 2])
        #expect(
            try Self.ggufError(block.bytes() + [UInt8](repeating: 0, count: 512)).contains(
                "not a multiple of the Q4_K block size 256"))

        var truncated = GGUFWriter()
        truncated.add("t", "F32", [64])
        #expect(try Self.ggufError(Array(truncated.bytes().dropLast(8))).contains("runs past the end of the file"))

        var dimensions = GGUFWriter()
        dimensions.add("t", "F32", [1, 1, 1, 1, 1])
        #expect(try Self.ggufError(dimensions.bytes()).contains("5 dimensions"))
    }

    @Test func ggufOverlappingAndUnalignedTensors() throws {
        var writer = GGUFWriter()
        writer.add("a", "F32", [64])
        writer.add("b", "F32", [64])
        var bytes = writer.bytes()
        // Point b's offset (the last 8 bytes of its info, before the padding) into a's data.
        let infoEnd = Self.unpaddedHeaderLength(writer) - 8
        bytes.replaceSubrange(infoEnd..<infoEnd + 8, with: Self.u64(32))
        #expect(try Self.ggufError(bytes).contains("overlaps tensor 'a'"))
        bytes.replaceSubrange(infoEnd..<infoEnd + 8, with: Self.u64(260))
        #expect(try Self.ggufError(bytes).contains("not a multiple of the alignment 32"))
    }

    static func unpaddedHeaderLength(_ writer: GGUFWriter) -> Int {
        24 + writer.tensors.reduce(0) { $0 + 8 + $1.name.utf8.count + 4 + 8 * $1.dimensions.count + 4 + 8 }
    }

    @Test func shardedIndexesMapEveryTensorOnce() throws {
        func model(_ weightMap: [String: String]) throws -> String {
            let directory = try TemporaryDirectory()
            for (shard, names) in [("a.safetensors", ["x", "y"]), ("b.safetensors", ["z", "y"])] {
                var writer = SafetensorsWriter()
                for name in names { writer.add(name, "F16", [2]) }
                try writer.write(to: directory.file("m/\(shard)"))
            }
            try directory.write("m/model.safetensors.index.json", json: ["weight_map": weightMap])
            let error = try #require(throws: RegistryError.self) { try directory.inspect() }
            #expect(error.message.hasPrefix("invalid model file m/model.safetensors.index.json: "), "\(error.message)")
            return error.message
        }
        #expect(
            try model(["x": "a.safetensors", "y": "a.safetensors", "z": "b.safetensors", "w": "c.safetensors"])
                .contains("names shard m/c.safetensors, which is not among the files"))
        #expect(
            try model(["x": "a.safetensors", "y": "a.safetensors", "z": "b.safetensors"]).contains(
                "shard m/b.safetensors holds tensor 'y' but the index maps it to m/a.safetensors"))
        #expect(try model(["x": "a.safetensors", "y": "b.safetensors", "z": "a.safetensors"]).contains("holds tensor"))
    }

    /// Thousands of mutations of valid files: every outcome is a parse or a typed refusal, never a crash.
    @Test func mutatedHeadersNeverCrash() throws {
        var safetensors = SafetensorsWriter()
        safetensors.add("model.embed_tokens.weight", "F16", [16, 8])
        safetensors.add("model.norm.weight", "F32", [8])
        safetensors.add("lm_head.weight", "BF16", [16, 8])
        var gguf = GGUFWriter()
        gguf.set("general.architecture", .string("llama"))
        gguf.set("llama.context_length", .u32(2048))
        gguf.set("llama.rope.freq_base", .f32(10000))
        gguf.set("tokenizer.ggml.tokens", .strings(["<s>", "</s>", "a", "b"]))
        gguf.add("token_embd.weight", "Q8_0", [32, 4])
        gguf.add("blk.0.attn_q.weight", "Q4_K", [256, 2])
        let originals: [(String, [UInt8])] = [
            ("model.safetensors", try safetensors.bytes()), ("model.gguf", gguf.bytes()),
        ]
        var random = SystemRandomNumberGenerator()
        var refused = 0
        var accepted = 0
        for iteration in 0..<6000 {
            let (path, original) = originals[iteration % 2]
            var bytes = original
            switch iteration % 5 {
            case 0:
                bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &random)))
            case 1:
                let at = Int.random(in: 0..<min(bytes.count, 400), using: &random)
                bytes.replaceSubrange(
                    at..<min(bytes.count, at + 8), with: Self.u64(UInt64.random(in: 0...UInt64.max, using: &random)))
            default:
                for _ in 0..<Int.random(in: 1...4, using: &random) {
                    bytes[Int.random(in: 0..<min(bytes.count, 400), using: &random)] = UInt8.random(
                        in: 0...255, using: &random)
                }
            }
            do {
                if path.hasSuffix(".gguf") {
                    _ = try GGUFHeader.parse(MemoryByteSource(bytes), path: path)
                } else {
                    _ = try SafetensorsHeader.parse(MemoryByteSource(bytes), path: path)
                }
                accepted += 1
            } catch {
                #expect(error.code == .invalidModelFile && error.message.contains(path), "\(error)")
                refused += 1
            }
        }
        #expect(refused > 3000 && accepted + refused == 6000)
    }
}
