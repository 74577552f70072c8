import Foundation
import ModelFormats
import ModelRegistryCore
import ServingPlan

/// The manifests that serve one track (stable or canary) of a model with vLLM, from its plan: the Service both
/// tracks share, the track's Deployment (the `modelreg fetch` init container, vLLM with the planned arguments, a
/// GPU a tensor-parallel rank), its PodDisruptionBudget and, when asked, its HorizontalPodAutoscaler.
///
/// Pinned (the default), the pod template carries the variant's manifest digest and the fetch names it: rendering
/// again after an alias moves changes the template, so `kubectl apply` rolls out then and only then, and a
/// rollback renders the old digest back. Following an alias, each pod fetches what the alias names when it
/// starts, and a move reaches the pods at their next rollout (`kubectl rollout restart`).
public struct ServingDeployment: Sendable {
    public enum Track: String, Sendable, CaseIterable {
        case stable, canary
    }

    /// What the fetch init container asks the registry for.
    public enum FetchTarget: Sendable, Equatable {
        /// The planned variant's manifest digest.
        case pinned(Digest)
        /// The alias the plan was made from, and the planned variant of what it names at the pod's start.
        case following(AliasName)
    }

    public var plan: ServingPlan
    public var target: FetchTarget
    /// The bytes of the chosen variant's files.
    public var modelBytes: Int64
    public var replicas: Int
    public var track: Track
    public var gpuType: String?
    public var namespace: String?
    /// Send the serving profile's warm-up request once vLLM is up (postStart).
    public var warmup: Bool
    /// Scale on vLLM's waiting requests a pod (an External metric), up to `maxReplicas`.
    public var hpaQueueDepth: Int?
    public var maxReplicas: Int
    public var registryURL: String
    public var modelregImage: String
    /// What the startup budget assumes of the fetch: bytes a second from the registry or the node cache.
    public var fetchBytesPerSecond: Int64

    public static let defaultVLLMVersion = "0.6.3"
    /// The fetch speed budgets assume when none was given or measured: 100 MiB/s.
    public static let defaultFetchBytesPerSecond: Int64 = 100 << 20
    public static let digestAnnotation = "modelreg.dev/manifest-digest"

    public init(
        plan: ServingPlan, target: FetchTarget, modelBytes: Int64, replicas: Int, track: Track, gpuType: String? = nil,
        namespace: String? = nil, warmup: Bool = false, hpaQueueDepth: Int? = nil, maxReplicas: Int? = nil,
        registryURL: String = "http://modelreg:8750", modelregImage: String = "modelreg:0.1.0",
        fetchBytesPerSecond: Int64 = ServingDeployment.defaultFetchBytesPerSecond
    ) throws(RegistryError) {
        guard (1...1000).contains(replicas) else {
            throw RegistryError(.invalidRequest, "--replicas must be from 1 to 1000, not \(replicas)")
        }
        if let hpaQueueDepth, hpaQueueDepth < 1 {
            throw RegistryError(.invalidRequest, "--hpa-queue-depth must be positive")
        }
        if warmup, plan.profile?.warmup == nil {
            throw RegistryError(
                .invalidRequest,
                "--warmup needs a warm-up request in the variant's serving profile (\(ServingProfile.fileName)): add \"warmup\": {\"path\": \"/v1/completions\", \"body\": {…}}"
            )
        }
        guard fetchBytesPerSecond > 0 else { throw RegistryError(.invalidRequest, "--fetch-speed must be positive") }
        self.plan = plan
        self.target = target
        self.modelBytes = modelBytes
        self.replicas = replicas
        self.track = track
        self.gpuType = gpuType
        self.namespace = namespace
        self.warmup = warmup
        self.hpaQueueDepth = hpaQueueDepth
        self.maxReplicas = max(maxReplicas ?? replicas * 2, replicas)
        self.registryURL = registryURL
        self.modelregImage = modelregImage
        self.fetchBytesPerSecond = fetchBytesPerSecond
    }

    /// `vllm-org-qwen2-7b`: the model's name as a Kubernetes name (lower case, `-` for `/`, `_` and `.`).
    public var appName: String {
        let slug = plan.model.value.lowercased().map { $0.isLetter || $0.isNumber ? $0 : "-" }
        return String(("vllm-" + String(slug)).prefix(55))
    }

    public var vllmImage: String { "vllm/vllm-openai:v\(plan.profile?.vllmVersion ?? Self.defaultVLLMVersion)" }

    /// A measured speed as budgets take it: rounded down to a power of two MiB/s (at least 1), so that
    /// re-rendering after a few more downloads renders the same bytes, and an unlucky moment errs long.
    public static func budgetSpeed(measured bytesPerSecond: Int64) -> Int64 {
        var speed: Int64 = 1 << 20
        while speed <= Int64.max / 2, speed * 2 <= bytesPerSecond { speed *= 2 }
        return speed
    }

    /// Seconds the init container may take: the files at the assumed speed, twice over, and at least 10 minutes.
    public var fetchTimeoutSeconds: Int64 { max(600, 2 * modelBytes / fetchBytesPerSecond) }

    /// Seconds vLLM may take to start: reading the weights a GPU holds at the assumed speed (the page cache
    /// usually does better), compiling CUDA graphs and profiling memory (5 minutes), twice over.
    public var startupBudgetSeconds: Int64 { 2 * (300 + plan.estimate.weightBytes / fetchBytesPerSecond) }

    /// Deployment, PodDisruptionBudget and, with `hpaQueueDepth`, HorizontalPodAutoscaler: the track's own.
    public func trackDocuments() -> [YAMLNode] {
        var documents = [deployment, disruptionBudget]
        if let autoscaler { documents.append(autoscaler) }
        return documents
    }

    public func yaml() -> String { Self.yaml([self]) }

    /// Several tracks of one model behind the Service they share, after comments that say what each serves.
    public static func yaml(_ tracks: [ServingDeployment]) -> String {
        guard let first = tracks.first else { return "" }
        var header = [
            "# vLLM serving \(first.plan.model), rendered by `modelreg k8s render` (README: \"Kubernetes manifests\")."
        ]
        for track in tracks { header.append("# \(track.summary)") }
        header.append(
            "# Budgets assume the fetch gets \(ByteCount.format(first.fetchBytesPerSecond, digits: 0))/s from the registry or the node cache."
        )
        header += [
            "# The fetch's read token comes from a Secret:",
            "#   kubectl create secret generic modelreg-read-token \\",
            "#     --from-literal=token=$(modelreg token create --name vllm --scope read --json | jq -r .token)",
        ]
        return header.joined(separator: "\n") + "\n"
            + YAMLNode.stream([first.service] + tracks.flatMap { $0.trackDocuments() })
    }

    /// One line on what the track serves and how.
    var summary: String {
        let release: String
        switch target {
        case .pinned(let digest):
            release = "\(plan.model)@\(digest) (\(plan.model):\(plan.version), variant \(plan.variant))"
        case .following(let alias):
            release = "\(plan.model)@\(alias), variant \(plan.variant) (\(plan.model):\(plan.version) when rendered)"
        }
        return "\(track.rawValue): \(replicas) replica\(replicas == 1 ? "" : "s") of \(release) on "
            + "\(plan.tensorParallelSize) GPU\(plan.tensorParallelSize == 1 ? "" : "s") each, --max-model-len \(plan.maxModelLen)."
    }

    private var name: String { "\(appName)-\(track.rawValue)" }
    private var appLabels: YAMLNode { .map([("app.kubernetes.io/name", .string(appName))]) }
    private var trackLabels: YAMLNode {
        .map([("app.kubernetes.io/name", .string(appName)), ("app.kubernetes.io/track", .string(track.rawValue))])
    }

    private func metadata(_ name: String, labels: YAMLNode) -> YAMLNode {
        var entries: [(String, YAMLNode)] = [("name", .string(name))]
        if let namespace { entries.append(("namespace", .string(namespace))) }
        entries.append(("labels", labels))
        return .map(entries)
    }

    private var service: YAMLNode {
        .map([
            ("apiVersion", .string("v1")), ("kind", .string("Service")),
            ("metadata", metadata(appName, labels: appLabels)),
            (
                "spec",
                .map([
                    ("selector", appLabels),
                    (
                        "ports",
                        .list([
                            .map([("name", .string("http")), ("port", .int(8000)), ("targetPort", .string("http"))])
                        ])
                    ),
                ])
            ),
        ])
    }

    private var deployment: YAMLNode {
        .map([
            ("apiVersion", .string("apps/v1")), ("kind", .string("Deployment")),
            ("metadata", metadata(name, labels: trackLabels)),
            (
                "spec",
                .map([
                    ("replicas", .int(Int64(replicas))),
                    ("selector", .map([("matchLabels", trackLabels)])),
                    (
                        "strategy",
                        .map([
                            ("type", .string("RollingUpdate")),
                            (
                                "rollingUpdate",
                                .map([("maxUnavailable", .string("25%")), ("maxSurge", .int(1))])
                            ),
                        ])
                    ),
                    (
                        "template",
                        .map([
                            (
                                "metadata",
                                templateMetadata
                            ),
                            ("spec", podSpec),
                        ])
                    ),
                ])
            ),
        ])
    }

    private var templateMetadata: YAMLNode {
        guard case .pinned(let digest) = target else { return .map([("labels", trackLabels)]) }
        return .map([
            ("labels", trackLabels), ("annotations", .map([(Self.digestAnnotation, .string(digest.description))])),
        ])
    }

    private var podSpec: YAMLNode {
        var affinity: [(String, YAMLNode)] = []
        if let gpuType {
            affinity.append(
                (
                    "nodeAffinity",
                    .map([
                        (
                            "requiredDuringSchedulingIgnoredDuringExecution",
                            .map([
                                (
                                    "nodeSelectorTerms",
                                    .list([
                                        .map([
                                            (
                                                "matchExpressions",
                                                .list([
                                                    .map([
                                                        ("key", .string("nvidia.com/gpu.product")),
                                                        ("operator", .string("In")),
                                                        ("values", .list([.string(gpuType)])),
                                                    ])
                                                ])
                                            )
                                        ])
                                    ])
                                )
                            ])
                        )
                    ])
                ))
        }
        affinity.append(
            (
                "podAntiAffinity",
                .map([
                    (
                        "preferredDuringSchedulingIgnoredDuringExecution",
                        .list([
                            .map([
                                ("weight", .int(100)),
                                (
                                    "podAffinityTerm",
                                    .map([
                                        ("labelSelector", .map([("matchLabels", appLabels)])),
                                        ("topologyKey", .string("kubernetes.io/hostname")),
                                    ])
                                ),
                            ])
                        ])
                    )
                ])
            ))
        return .map([
            ("initContainers", .list([cacheOwner, fetch])),
            ("containers", .list([vllm])),
            (
                "tolerations",
                .list([
                    .map([
                        ("key", .string("nvidia.com/gpu")), ("operator", .string("Exists")),
                        ("effect", .string("NoSchedule")),
                    ])
                ])
            ),
            ("affinity", .map(affinity)),
            (
                "volumes",
                .list([
                    .map([
                        ("name", .string("models")),
                        (
                            "emptyDir",
                            .map([("sizeLimit", .string(Self.quantity(modelBytes + modelBytes / 10 + (1 << 30))))])
                        ),
                    ]),
                    .map([
                        ("name", .string("node-cache")),
                        (
                            "hostPath",
                            .map([
                                ("path", .string("/var/lib/modelreg-cache")), ("type", .string("DirectoryOrCreate")),
                            ])
                        ),
                    ]),
                    .map([
                        ("name", .string("shm")),
                        ("emptyDir", .map([("medium", .string("Memory")), ("sizeLimit", .string("8Gi"))])),
                    ]),
                ])
            ),
        ])
    }

    private static func securityContext(user: Int64, capabilities: [String] = []) -> YAMLNode {
        var context: [(String, YAMLNode)] = [("runAsUser", .int(user))]
        if user == 0 {
            context.append(("runAsNonRoot", .bool(false)))
        } else {
            context.append(("runAsGroup", .int(user)))
        }
        context += [("allowPrivilegeEscalation", .bool(false)), ("readOnlyRootFilesystem", .bool(true))]
        var drop: [(String, YAMLNode)] = [("drop", .list([.string("ALL")]))]
        if !capabilities.isEmpty { drop.append(("add", .list(capabilities.map(YAMLNode.string)))) }
        context.append(("capabilities", .map(drop)))
        return .map(context)
    }

    private static func mount(_ name: String, _ path: String, readOnly: Bool = false) -> YAMLNode {
        var entries: [(String, YAMLNode)] = [("name", .string(name)), ("mountPath", .string(path))]
        if readOnly { entries.append(("readOnly", .bool(true))) }
        return .map(entries)
    }

    private static func resources(cpu: String, memory: String, limit: String, gpus: Int? = nil) -> YAMLNode {
        var requests: [(String, YAMLNode)] = [("cpu", .string(cpu)), ("memory", .string(memory))]
        var limits: [(String, YAMLNode)] = [("memory", .string(limit))]
        if let gpus {
            requests.append(("nvidia.com/gpu", .string(String(gpus))))
            limits.append(("nvidia.com/gpu", .string(String(gpus))))
        }
        return .map([("requests", .map(requests)), ("limits", .map(limits))])
    }

    /// The hostPath is created as root, 0755: the fetch runs as 10001 and must add files to the node cache.
    private var cacheOwner: YAMLNode {
        .map([
            ("name", .string("node-cache-owner")), ("image", .string(modelregImage)),
            ("command", .list(["/bin/chown", "10001:10001", "/var/cache/modelreg"].map(YAMLNode.string))),
            ("volumeMounts", .list([Self.mount("node-cache", "/var/cache/modelreg")])),
            ("resources", Self.resources(cpu: "10m", memory: "16Mi", limit: "32Mi")),
            ("securityContext", Self.securityContext(user: 0, capabilities: ["CHOWN"])),
        ])
    }

    private var fetch: YAMLNode {
        let release: [String]
        switch target {
        case .pinned(let digest): release = ["\(plan.model)@\(digest)"]
        case .following(let alias): release = ["\(plan.model)@\(alias)", "--variant", plan.variant.value]
        }
        return .map([
            ("name", .string("fetch-model")), ("image", .string(modelregImage)),
            (
                "args",
                .list(
                    (["fetch"] + release + [
                        "--dest", "/models", "--cache", "/var/cache/modelreg", "--timeout", "\(fetchTimeoutSeconds)s",
                    ]).map(YAMLNode.string))
            ),
            (
                "env",
                .list([
                    .map([("name", .string("MODELREG_URL")), ("value", .string(registryURL))]),
                    .map([
                        ("name", .string("MODELREG_TOKEN")),
                        (
                            "valueFrom",
                            .map([
                                (
                                    "secretKeyRef",
                                    .map([("name", .string("modelreg-read-token")), ("key", .string("token"))])
                                )
                            ])
                        ),
                    ]),
                ])
            ),
            (
                "volumeMounts",
                .list([Self.mount("models", "/models"), Self.mount("node-cache", "/var/cache/modelreg")])
            ),
            ("resources", Self.resources(cpu: "1", memory: "128Mi", limit: "512Mi")),
            ("securityContext", Self.securityContext(user: 10001)),
        ])
    }

    private var vllm: YAMLNode {
        let probe = { (period: Int64, failures: Int64) -> YAMLNode in
            .map([
                ("httpGet", .map([("path", .string("/health")), ("port", .string("http"))])),
                ("periodSeconds", .int(period)), ("failureThreshold", .int(failures)),
            ])
        }
        var environment: [YAMLNode] = [.map([("name", .string("HF_HUB_OFFLINE")), ("value", .string("1"))])]
        for (name, value) in (plan.profile?.environment ?? [:]).sorted(by: { $0.key < $1.key }) {
            environment.append(.map([("name", .string(name)), ("value", .string(value))]))
        }
        // vLLM holds the weights a GPU takes in host memory while it loads them, a rank a GPU.
        let hostBytes = plan.estimate.weightBytes * Int64(plan.tensorParallelSize)
        var container: [(String, YAMLNode)] = [
            ("name", .string("vllm")), ("image", .string(vllmImage)),
            ("args", .list((plan.vllmArguments + ["--port", "8000"]).map(YAMLNode.string))),
            ("env", .list(environment)),
            ("ports", .list([.map([("name", .string("http")), ("containerPort", .int(8000))])])),
            (
                "volumeMounts",
                .list([Self.mount("models", "/models", readOnly: true), Self.mount("shm", "/dev/shm")])
            ),
            ("startupProbe", probe(10, max(startupBudgetSeconds / 10, 30))),
            ("readinessProbe", probe(5, 3)),
            ("livenessProbe", probe(15, 4)),
            (
                "resources",
                Self.resources(
                    cpu: String(4 * plan.tensorParallelSize), memory: Self.quantity(hostBytes + (8 << 30)),
                    limit: Self.quantity(hostBytes + (16 << 30)), gpus: plan.tensorParallelSize)
            ),
        ]
        if warmup, let request = plan.profile?.warmup {
            // postStart runs beside the server's start: retry until it answers (the probes wait for this hook).
            let script = """
                import time, urllib.request
                request = urllib.request.Request(
                    \(Self.pythonBytes("http://127.0.0.1:8000" + request.path)).decode(),
                    data=\(Self.pythonBytes(request.body)), headers={"Content-Type": "application/json"})
                for attempt in range(120):
                    try:
                        urllib.request.urlopen(request, timeout=600).read()
                        break
                    except Exception:
                        time.sleep(5)
                """
            container.append(
                (
                    "lifecycle",
                    .map([
                        (
                            "postStart",
                            .map([("exec", .map([("command", .list(["python3", "-c", script].map(YAMLNode.string)))]))])
                        )
                    ])
                ))
        }
        return .map(container)
    }

    private var disruptionBudget: YAMLNode {
        .map([
            ("apiVersion", .string("policy/v1")), ("kind", .string("PodDisruptionBudget")),
            ("metadata", metadata(name, labels: trackLabels)),
            ("spec", .map([("maxUnavailable", .int(1)), ("selector", .map([("matchLabels", trackLabels)]))])),
        ])
    }

    private var autoscaler: YAMLNode? {
        guard let hpaQueueDepth else { return nil }
        return .map([
            ("apiVersion", .string("autoscaling/v2")), ("kind", .string("HorizontalPodAutoscaler")),
            ("metadata", metadata(name, labels: trackLabels)),
            (
                "spec",
                .map([
                    (
                        "scaleTargetRef",
                        .map([
                            ("apiVersion", .string("apps/v1")), ("kind", .string("Deployment")),
                            ("name", .string(name)),
                        ])
                    ),
                    ("minReplicas", .int(Int64(replicas))), ("maxReplicas", .int(Int64(maxReplicas))),
                    (
                        "metrics",
                        .list([
                            .map([
                                ("type", .string("External")),
                                (
                                    "external",
                                    .map([
                                        (
                                            "metric",
                                            .map([
                                                ("name", .string("vllm:num_requests_waiting")),
                                                ("selector", .map([("matchLabels", trackLabels)])),
                                            ])
                                        ),
                                        (
                                            "target",
                                            .map([
                                                ("type", .string("AverageValue")),
                                                ("averageValue", .string(String(hpaQueueDepth))),
                                            ])
                                        ),
                                    ])
                                ),
                            ])
                        ])
                    ),
                ])
            ),
        ])
    }

    /// A byte count as a Kubernetes quantity, rounded up to whole GiB.
    static func quantity(_ bytes: Int64) -> String { "\((bytes + (1 << 30) - 1) >> 30)Gi" }

    /// JSON text as a Python bytes literal.
    static func pythonBytes(_ text: String) -> String {
        "b'"
            + text.utf8.map { byte in
                byte >= 0x20 && byte < 0x7f && byte != UInt8(ascii: "'") && byte != UInt8(ascii: "\\")
                    ? String(UnicodeScalar(byte)) : String(format: "\\x%02x", byte)
            }.joined() + "'"
    }
}
