import ArgumentParser
import KubernetesManifests
import ModelFormats
import ModelRegistryCore
import RegistryClient
import ServingPlan

/// What a serving plan is made for: the release, the GPUs and the load.
struct PlanOptions: ParsableArguments {
    @Argument(help: "NAME:VERSION, NAME@ALIAS or NAME@sha256:….")
    var reference: String

    @Option(help: "Memory of each GPU (24GiB, 80G, 16GB).")
    var gpuMemory: String

    @Option(help: "The most GPUs a replica may take (tensor parallelism within one node).")
    var gpus: Int = GPUBudget.defaultMaxGPUs

    @Option(help: "Context every sequence must have (default: the longest that fits, at least 4096 tokens).")
    var context: Int64?

    @Option(help: "Sequences served at once, each with the whole context.")
    var concurrency: Int64 = 1

    @Option(help: "vLLM's --kv-cache-dtype: auto (the model's dtype) or fp8.")
    var kvCacheDtype: String = KVCacheDtype.auto.rawValue

    @Option(help: "vLLM's --gpu-memory-utilization: the share of each GPU it may take.")
    var gpuMemoryUtilization: Double = GPUBudget.defaultUtilization

    /// The plan of `reference`, or of the release the command names.
    func plan(_ connection: RegistryConnection, of reference: String? = nil) async throws -> ServingPlan {
        guard let cacheDtype = KVCacheDtype(rawValue: kvCacheDtype) else {
            throw RegistryError(.invalidRequest, "--kv-cache-dtype must be auto or fp8, not '\(kvCacheDtype)'")
        }
        let budget = try GPUBudget(
            memoryBytes: try ByteCount.parse(gpuMemory), maxGPUs: gpus, utilization: gpuMemoryUtilization)
        let request = try ServingRequest(context: context, concurrency: concurrency, kvCacheDtype: cacheDtype)
        return try await connection.servingPlan(
            try ModelReference.release(reference ?? self.reference), budget: budget, request: request)
    }
}

struct Plan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Plan how vLLM serves a release on given GPUs: variant, tensor-parallel size, context, arguments.",
        discussion: """
            Chooses the highest-precision variant that fits (as --fit does), the smallest tensor-parallel size it \
            fits at (one vLLM accepts: it divides the attention heads, and divides the KV heads or is a multiple \
            of them), and the longest --max-model-len that size leaves room for; prints vLLM's arguments and why \
            each was chosen. The README gives the per-GPU estimate and its limits.
            """
    )

    @OptionGroup var options: PlanOptions
    @OptionGroup var client: ClientOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let plan = try await options.plan(try client.connection)
        output.print(plan) { Presentation.plan(plan) }
    }
}

struct Kubernetes: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "k8s", abstract: "Kubernetes manifests for serving a release with vLLM.",
        subcommands: [Render.self])

    struct Render: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the Service, Deployment, PodDisruptionBudget (and HPA) that serve a release's plan.",
            discussion: """
                The Deployment's fetch init container pins the planned variant's digest, which the pod template \
                also carries as an annotation: render again after an alias moves and `kubectl apply` rolls out. \
                With --follow-alias each pod fetches what the alias names when it starts instead. With --canary, \
                a canary track of another release renders beside the stable one, behind the same Service.
                """
        )

        @OptionGroup var options: PlanOptions

        @Option(help: "Pods of this track.")
        var replicas: Int = 1

        @Option(help: "stable or canary: one Deployment a track, behind one Service.")
        var track: String = ServingDeployment.Track.stable.rawValue

        @Option(help: "Schedule only on nodes whose nvidia.com/gpu.product is this (A100-SXM4-80GB, …).")
        var gpuType: String?

        @Option(help: "Namespace of the manifests.")
        var namespace: String?

        @Flag(help: "Send the serving profile's warm-up request once vLLM is up (postStart).")
        var warmup = false

        @Option(help: "Add an HPA on vLLM's waiting requests a pod, scaling out above this many.")
        var hpaQueueDepth: Int?

        @Option(help: "The HPA's most replicas (default: twice --replicas).")
        var maxReplicas: Int?

        @Option(help: "The registry as the pods reach it.")
        var registryURL: String = "http://modelreg:8750"

        @Option(
            help: """
                Fetch speed the init container's timeout and the startup probe's budget assume (100MiB/s), or \
                'measured': the registry's median over its last large downloads, rounded down to a power of two.
                """)
        var fetchSpeed: String = "measured"

        @Flag(help: "Fetch what the alias names when each pod starts (REF is NAME@ALIAS), not the digest it names now.")
        var followAlias = false

        @Option(help: "Also render a canary track of this release (NAME@ALIAS, …) behind the same Service.")
        var canary: String?

        @Option(help: "Pods of the canary track.")
        var canaryReplicas: Int = 1

        @OptionGroup var client: ClientOptions

        func run() async throws {
            guard let track = ServingDeployment.Track(rawValue: track) else {
                throw RegistryError(.invalidRequest, "--track must be stable or canary, not '\(track)'")
            }
            if canary != nil, track != .stable {
                throw RegistryError(
                    .invalidRequest, "--canary renders a canary beside the stable track: leave out --track")
            }
            let model = try ModelReference.release(options.reference).name
            if let canary, try ModelReference.release(canary).name != model {
                throw RegistryError(
                    .invalidRequest, "--canary must name a release of \(model), the model both tracks serve")
            }
            let connection = try client.connection
            let speed = try await fetchBytesPerSecond(connection)
            var tracks = [
                try await deployment(of: options.reference, track: track, replicas: replicas, speed: speed, connection)
            ]
            if let canary {
                tracks.append(
                    try await deployment(of: canary, track: .canary, replicas: canaryReplicas, speed: speed, connection)
                )
            }
            print(ServingDeployment.yaml(tracks), terminator: "")
        }

        /// `--fetch-speed`, or what the registry measured, said on standard error.
        private func fetchBytesPerSecond(_ connection: RegistryConnection) async throws -> Int64 {
            guard fetchSpeed == "measured" else {
                return try ByteCount.parse(fetchSpeed.hasSuffix("/s") ? String(fetchSpeed.dropLast(2)) : fetchSpeed)
            }
            let measured = try await connection.downloadSpeed()
            guard let median = measured.medianBytesPerSecond, median > 0 else {
                OutputOptions.warn(
                    "note: the registry has measured no download of 16 MiB or more yet: budgets assume 100MiB/s (set --fetch-speed)"
                )
                return ServingDeployment.defaultFetchBytesPerSecond
            }
            let speed = ServingDeployment.budgetSpeed(measured: median)
            OutputOptions.warn(
                "note: budgets assume \(ByteCount.format(speed, digits: 0))/s: the registry's median download speed (\(ByteCount.format(median))/s over \(measured.samples) downloads), rounded down to a power of two"
            )
            return speed
        }

        private func deployment(
            of reference: String, track: ServingDeployment.Track, replicas: Int, speed: Int64,
            _ connection: RegistryConnection
        ) async throws -> ServingDeployment {
            let plan = try await options.plan(connection, of: reference)
            let resolved = try await connection.resolve(
                ModelReference(name: plan.model, target: .version(plan.version)), variant: plan.variant)
            let target: ServingDeployment.FetchTarget
            if followAlias {
                guard case .alias(let alias) = try ModelReference.release(reference).target else {
                    throw RegistryError(.invalidRequest, "--follow-alias needs NAME@ALIAS, not '\(reference)'")
                }
                target = .following(alias)
            } else {
                target = .pinned(resolved.digest)
            }
            return try ServingDeployment(
                plan: plan, target: target, modelBytes: resolved.manifest.totalSize, replicas: replicas, track: track,
                gpuType: gpuType, namespace: namespace, warmup: warmup, hpaQueueDepth: hpaQueueDepth,
                maxReplicas: maxReplicas, registryURL: registryURL, fetchBytesPerSecond: speed)
        }
    }
}
