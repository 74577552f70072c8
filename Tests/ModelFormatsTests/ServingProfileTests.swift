import Foundation
import ModelRegistryCore
import Testing

@testable import ModelFormats

/// `modelreg-serving.json` as inspection reads it at push: every part checked, what `modelreg plan` chooses left
/// to it.
@Suite struct ServingProfileTests {
    static func parse(_ text: String) throws(RegistryError) -> ServingProfile {
        try ServingProfile.parse(MemoryByteSource(Array(text.utf8)), path: ServingProfile.fileName)
    }

    @Test func aProfileIsReadWhole() throws {
        let profile = try Self.parse(
            #"""
            {"vllmVersion": "0.6.3", "arguments": ["--enable-auto-tool-choice", "--tool-call-parser", "hermes"],
             "environment": {"VLLM_ATTENTION_BACKEND": "FLASHINFER"},
             "warmup": {"path": "/v1/completions", "body": {"prompt": "Hello", "max_tokens": 1}}}
            """#)
        #expect(profile.vllmVersion == "0.6.3")
        #expect(profile.arguments == ["--enable-auto-tool-choice", "--tool-call-parser", "hermes"])
        #expect(profile.environment == ["VLLM_ATTENTION_BACKEND": "FLASHINFER"])
        #expect(
            profile.warmup
                == ServingProfile.Warmup(path: "/v1/completions", body: #"{"max_tokens":1,"prompt":"Hello"}"#))
        #expect(try Self.parse("{}") == ServingProfile())
    }

    @Test(arguments: [
        ("[]", "not a JSON object"),
        (#"{"args": []}"#, "unknown key 'args'"),
        (#"{"vllmVersion": "latest"}"#, "vllmVersion must be a version"),
        (#"{"arguments": "--x"}"#, "a list of strings"),
        (
            #"{"arguments": ["--max-model-len", "4096"]}"#,
            "arguments set --max-model-len, which `modelreg plan` chooses"
        ),
        (#"{"arguments": ["--tensor-parallel-size=2"]}"#, "arguments set --tensor-parallel-size"),
        (#"{"arguments": ["--enable-prefix-cache"]}"#, "vLLM 0.6.3 has no argument --enable-prefix-cache"),
        (#"{"vllmVersion": "0.1.0", "arguments": []}"#, "knows the arguments of vLLM 0.6.3, not 0.1.0"),
        (#"{"environment": {"A-B": "1"}}"#, "'A-B' is not an environment variable name"),
        (#"{"environment": {"A": 1}}"#, "map variable names to strings"),
        (#"{"warmup": {"path": "v1/completions"}}"#, "warmup must be"),
        (#"{"warmup": {"path": "/v1/completions", "method": "GET"}}"#, "warmup must be"),
    ])
    func whatIsNotAProfileIsRefused(_ text: String, _ message: String) {
        do {
            _ = try Self.parse(text)
            Issue.record("\(text) was taken")
        } catch {
            #expect(error.code == .invalidModelFile && error.message.contains(message), "\(error.message)")
            #expect(error.message.hasPrefix("invalid model file modelreg-serving.json: "))
        }
    }

    /// What `modelreg plan` sets and what a profile may add are vLLM 0.6.3's own arguments.
    @Test func theArgumentTableHoldsThePlannedFlags() throws {
        try VLLMArguments.check(Array(ServingProfile.plannedFlags), version: nil)
        try VLLMArguments.check(
            ["--tool-call-parser", "--enable-auto-tool-choice", "--max_num_seqs=8", "-tp"], version: "0.6.3")
    }

    @Test func aLargeProfileIsRefusedUnread() {
        let text = #"{"arguments": [""# + String(repeating: "x", count: 70_000) + #""]}"#
        #expect(throws: RegistryError.self) { try Self.parse(text) }
    }

    /// Inspection finds the profile at the variant's root, and refuses the push of a bad one.
    @Test func inspectionReadsTheProfile() throws {
        let source = MemoryByteSource(Array(#"{"arguments": ["--enable-prefix-caching"]}"#.utf8))
        let inspection = try ModelInspector.inspect(paths: [try ManifestPath(ServingProfile.fileName)]) { _ in source }
        #expect(inspection.servingProfile?.arguments == ["--enable-prefix-caching"])
        let bad = MemoryByteSource(Array(#"{"arguments": ["--port", "9000"]}"#.utf8))
        #expect(throws: RegistryError.self) {
            try ModelInspector.inspect(paths: [try ManifestPath(ServingProfile.fileName)]) { _ in bad }
        }
    }
}
