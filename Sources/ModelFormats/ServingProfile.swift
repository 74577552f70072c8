import Foundation
import ModelRegistryCore

/// How a variant wants to be served, beyond what `modelreg plan` derives from its shape: a file of the variant,
/// `modelreg-serving.json`, pushed with it and checked at push like config.json.
///
///     {
///       "vllmVersion": "0.6.3",
///       "arguments": ["--enable-auto-tool-choice", "--tool-call-parser", "hermes"],
///       "environment": {"VLLM_ATTENTION_BACKEND": "FLASHINFER"},
///       "warmup": {"path": "/v1/completions", "body": {"model": "qwen2-7b", "prompt": "Hello", "max_tokens": 1}}
///     }
///
/// Every key is optional. `vllmVersion` must be one `VLLMArguments` knows (default 0.6.3); `arguments` are that
/// release's, checked against its table, added after the planned ones, which they may not repeat
/// (`plannedFlags`); `environment` is the server's; `warmup` is a request sent once the server is up (a POST of
/// `body` to `path`).
public struct ServingProfile: Hashable, Sendable, Codable {
    public static let fileName = "modelreg-serving.json"
    public static let maxSize: Int64 = 64 << 10
    /// The flags `modelreg plan` sets from the variant and the GPUs; a profile may not set them too.
    public static let plannedFlags: Set<String> = [
        "--model", "--served-model-name", "--tensor-parallel-size", "-tp", "--max-model-len", "--dtype",
        "--kv-cache-dtype", "--gpu-memory-utilization", "--quantization", "-q", "--load-format", "--port", "--host",
    ]

    public struct Warmup: Hashable, Sendable, Codable {
        public var path: String
        /// The request body as JSON text, keys sorted.
        public var body: String

        public init(path: String, body: String) {
            self.path = path
            self.body = body
        }
    }

    public var vllmVersion: String?
    public var arguments: [String] = []
    public var environment: [String: String] = [:]
    public var warmup: Warmup?

    public init(
        vllmVersion: String? = nil, arguments: [String] = [], environment: [String: String] = [:],
        warmup: Warmup? = nil
    ) {
        self.vllmVersion = vllmVersion
        self.arguments = arguments
        self.environment = environment
        self.warmup = warmup
    }

    public static func parse(_ source: any ByteSource, path: String) throws(RegistryError) -> ServingProfile {
        let file = ModelFile(path: path, source: source)
        guard file.size <= maxSize else {
            throw file.problem("it is \(file.size) bytes, over the \(maxSize)-byte limit for a serving profile")
        }
        let bytes = try file.bytes(at: 0, count: Int(file.size), what: "the serving profile")
        guard let json = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] else {
            throw file.problem("it is not a JSON object")
        }
        let keys = ["vllmVersion", "arguments", "environment", "warmup"]
        if let unknown = json.keys.sorted().first(where: { !keys.contains($0) }) {
            throw file.problem(
                "unknown key '\(unknown.prefix(100))': a serving profile has \(keys.joined(separator: ", "))")
        }
        var profile = ServingProfile()
        if let version = json["vllmVersion"] {
            guard let text = version as? String,
                text.range(of: #"^[0-9]+\.[0-9]+(\.[0-9]+)?$"#, options: .regularExpression) != nil
            else {
                throw file.problem("vllmVersion must be a version such as \"0.6.3\"")
            }
            profile.vllmVersion = text
        }
        if let arguments = json["arguments"] {
            guard let words = arguments as? [String] else {
                throw file.problem("arguments must be a list of strings, as vLLM's command line takes them")
            }
            for word in words where word.hasPrefix("-") {
                let flag = String(word.split(separator: "=", maxSplits: 1)[0])
                if plannedFlags.contains(flag) {
                    throw file.problem(
                        "arguments set \(flag), which `modelreg plan` chooses from the variant and the GPUs: leave it out"
                    )
                }
            }
            profile.arguments = words
        }
        do {
            try VLLMArguments.check(profile.arguments, version: profile.vllmVersion)
        } catch {
            throw file.problem(error.message)
        }
        if let environment = json["environment"] {
            guard let variables = environment as? [String: String] else {
                throw file.problem("environment must map variable names to strings")
            }
            if let name = variables.keys.sorted().first(where: {
                $0.range(of: "^[A-Za-z_][A-Za-z0-9_]*$", options: .regularExpression) == nil
            }) {
                throw file.problem("'\(name.prefix(100))' is not an environment variable name")
            }
            profile.environment = variables
        }
        if let warmup = json["warmup"] {
            guard let request = warmup as? [String: Any], let path = request["path"] as? String, path.hasPrefix("/"),
                Set(request.keys).isSubset(of: ["path", "body"])
            else {
                throw file.problem(#"warmup must be {"path": "/v1/…", "body": {…}}"#)
            }
            let body = request["body"] ?? [String: Any]()
            guard JSONSerialization.isValidJSONObject(body),
                let text = try? JSONSerialization.data(
                    withJSONObject: body, options: [.sortedKeys, .withoutEscapingSlashes])
            else {
                throw file.problem("warmup's body must be a JSON object or array")
            }
            profile.warmup = Warmup(path: path, body: String(decoding: text, as: UTF8.self))
        }
        return profile
    }
}
