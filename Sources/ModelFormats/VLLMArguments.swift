import ModelRegistryCore

/// The arguments `vllm serve` takes in the vLLM releases modelreg knows, against which a serving profile's
/// arguments are checked at push: a misspelt flag fails the push, not the pod.
public enum VLLMArguments {
    /// The release the rendered manifests run (`vllm/vllm-openai:v0.6.3`) and a profile without `vllmVersion`
    /// is checked against.
    public static let defaultVersion = "0.6.3"

    /// vLLM v0.6.3 (commit fd47e57f4b0d5f7920903490bce13bc9e49d8dba, 2024-10-14): every option string of the
    /// `add_argument` calls in `vllm/engine/arg_utils.py` (EngineArgs and AsyncEngineArgs `add_cli_args`) and
    /// `vllm/entrypoints/openai/cli_args.py` (`make_arg_parser`); v0.6.3.post1 has the same set.
    static let v063: Set<String> = [
        "--allow-credentials", "--allowed-headers", "--allowed-methods", "--allowed-origins", "--api-key",
        "--block-size", "--chat-template", "--code-revision", "--collect-detailed-traces", "--config-format",
        "--cpu-offload-gb", "--device", "--disable-async-output-proc", "--disable-custom-all-reduce",
        "--disable-fastapi-docs", "--disable-frontend-multiprocessing", "--disable-log-requests",
        "--disable-log-stats", "--disable-logprobs-during-spec-decoding", "--disable-sliding-window",
        "--distributed-executor-backend", "--download-dir", "--dtype", "--enable-auto-tool-choice",
        "--enable-chunked-prefill", "--enable-lora", "--enable-prefix-caching", "--enable-prompt-adapter",
        "--enforce-eager", "--fully-sharded-loras", "--gpu-memory-utilization", "--guided-decoding-backend",
        "--host", "--ignore-patterns", "--kv-cache-dtype", "--limit-mm-per-prompt", "--load-format",
        "--long-lora-scaling-factors", "--lora-dtype", "--lora-extra-vocab-size", "--lora-modules",
        "--max-context-len-to-capture", "--max-cpu-loras", "--max-log-len", "--max-logprobs", "--max-lora-rank",
        "--max-loras", "--max-model-len", "--max-num-batched-tokens", "--max-num-seqs",
        "--max-parallel-loading-workers", "--max-prompt-adapter-token", "--max-prompt-adapters",
        "--max-seq-len-to-capture", "--middleware", "--mm-processor-kwargs", "--model",
        "--model-loader-extra-config", "--multi-step-stream-outputs", "--ngram-prompt-lookup-max",
        "--ngram-prompt-lookup-min", "--num-gpu-blocks-override", "--num-lookahead-slots",
        "--num-scheduler-steps", "--num-speculative-tokens", "--otlp-traces-endpoint",
        "--override-neuron-config", "--pipeline-parallel-size", "--port", "--preemption-mode",
        "--prompt-adapters", "--qlora-adapter-name-or-path", "--quantization", "--quantization-param-path",
        "--ray-workers-use-nsight", "--response-role", "--return-tokens-as-token-ids", "--revision",
        "--root-path", "--rope-scaling", "--rope-theta", "--scheduler-delay-factor", "--scheduling-policy",
        "--seed", "--served-model-name", "--skip-tokenizer-init", "--spec-decoding-acceptance-method",
        "--speculative-disable-by-batch-size", "--speculative-disable-mqa-scorer",
        "--speculative-draft-tensor-parallel-size", "--speculative-max-model-len", "--speculative-model",
        "--speculative-model-quantization", "--ssl-ca-certs", "--ssl-cert-reqs", "--ssl-certfile",
        "--ssl-keyfile", "--swap-space", "--tensor-parallel-size", "--tokenizer", "--tokenizer-mode",
        "--tokenizer-pool-extra-config", "--tokenizer-pool-size", "--tokenizer-pool-type",
        "--tokenizer-revision", "--tool-call-parser", "--tool-parser-plugin", "--trust-remote-code",
        "--typical-acceptance-sampler-posterior-alpha", "--typical-acceptance-sampler-posterior-threshold",
        "--use-v2-block-manager", "--uvicorn-log-level", "--worker-use-ray", "-pp", "-q", "-spec-draft-tp",
        "-tp",
    ]

    public static let known: [String: Set<String>] = ["0.6.3": v063]

    /// Throws naming the first flag of `arguments` (a word starting with `-`, up to any `=`) that vLLM `version`
    /// does not take, or the version when modelreg does not know its arguments.
    public static func check(_ arguments: [String], version: String?) throws(RegistryError) {
        let version = version ?? defaultVersion
        guard let flags = known[version] else {
            throw RegistryError(
                .invalidModelFile,
                "modelreg knows the arguments of vLLM \(known.keys.sorted().joined(separator: ", ")), not \(version): name one of those in vllmVersion"
            )
        }
        for word in arguments where word.hasPrefix("-") {
            let flag = String(word.split(separator: "=", maxSplits: 1)[0])
            guard flags.contains(flag) || flags.contains(flag.replacingOccurrences(of: "_", with: "-")) else {
                throw RegistryError(.invalidModelFile, "vLLM \(version) has no argument \(flag.prefix(100))")
            }
        }
    }
}
