import Foundation
import ModelRegistryCore
import OCIArtifacts
import Testing

@Suite struct ModelPackArtifactTests {
    static func file(_ path: String, _ text: String) throws -> ManifestFile {
        let bytes = Array(text.utf8)
        return ManifestFile(path: try ManifestPath(path), digest: Digest.of(bytes), size: Int64(bytes.count))
    }

    static func manifest() throws -> Manifest {
        Manifest(
            format: .safetensors,
            files: [
                try file("model.safetensors", "weights"), try file("config.json", "{}"),
                try file("tokenizer.json", "{}"), try file("README.md", "# card"), try file("LICENSE", "MIT"),
                try file("modeling_tiny.py", "import torch"),
            ],
            quantization: Quantization(method: "awq", bits: 4),
            metadata: ModelMetadata(
                architecture: "LlamaForCausalLM", parameterCount: 7_615_616_512,
                dtypeBytes: ["I32": 100, "F16": 40], weightBytes: 140, torchDtype: "float16",
                weightFiles: ["model.safetensors": "safetensors"]))
    }

    static func artifact() throws -> ModelPackArtifact {
        let manifest = try manifest()
        return ModelPackArtifact(
            model: try ModelName("org/tiny"), version: try VersionName("2"), variant: try VariantName("awq-int4"),
            manifest: manifest, manifestDigest: manifest.digest, createdAt: "2026-12-04T10:00:00.000Z")
    }

    /// An artifact's bytes are its digest, which clients pin forever: the same variant must give the same bytes
    /// in every version of the registry. If this fails, the change moved every published digest.
    @Test func theSameVariantAlwaysGivesTheSameBytes() throws {
        let artifact = try Self.artifact()
        #expect(try Self.artifact().manifest == artifact.manifest)
        #expect(
            artifact.manifest.digest.description
                == "sha256:5740bee3d34062c354dc1955309bb9b79b7303ef7f7ad243ab6b90c6eb50f1cd",
            "\(String(decoding: artifact.manifest.bytes, as: UTF8.self))")
        #expect(
            artifact.config.digest.description
                == "sha256:ed3a596fdd7c2282e3714e631a64c8f89cf97bba7a9a9dd1c3a48c9f9246aca5",
            "\(String(decoding: artifact.config.bytes, as: UTF8.self))")
    }

    @Test func eachFileIsARawLayerOfItsKindNamedByItsPath() throws {
        let artifact = try Self.artifact()
        let manifest = try JSONDecoder().decode(OCIImageManifest.self, from: Data(artifact.manifest.bytes))
        #expect(manifest.mediaType == OCIMediaType.imageManifest)
        #expect(manifest.artifactType == OCIMediaType.modelManifest)
        #expect(manifest.config.mediaType == OCIMediaType.modelConfig)
        #expect(manifest.config.digest == artifact.config.digest.description)
        let kinds = Dictionary(
            uniqueKeysWithValues: manifest.layers.map { ($0.annotations?[OCIAnnotation.filepath] ?? "", $0.mediaType) })
        #expect(
            kinds == [
                "model.safetensors": "application/vnd.cncf.model.weight.v1.raw",
                "config.json": "application/vnd.cncf.model.weight.config.v1.raw",
                "tokenizer.json": "application/vnd.cncf.model.weight.config.v1.raw",
                "README.md": "application/vnd.cncf.model.doc.v1.raw",
                "LICENSE": "application/vnd.cncf.model.doc.v1.raw",
                "modeling_tiny.py": "application/vnd.cncf.model.code.v1.raw",
            ])
        for layer in manifest.layers {
            #expect(layer.annotations?[OCIAnnotation.title] == layer.annotations?[OCIAnnotation.filepath])
            let file = try #require(
                try Self.manifest().files.first { $0.path.value == layer.annotations?[OCIAnnotation.title] })
            #expect(layer.digest == file.digest.description && layer.size == file.size)
        }
    }

    @Test func theConfigDescribesTheModel() throws {
        let artifact = try Self.artifact()
        let config = try JSONDecoder().decode(ModelPackConfig.self, from: Data(artifact.config.bytes))
        #expect(config.descriptor.name == "org/tiny" && config.descriptor.version == "2")
        #expect(config.descriptor.createdAt == "2026-12-04T10:00:00.000Z")
        #expect(config.descriptor.revision == (try Self.manifest().digest.description))
        #expect(config.config.architecture == "LlamaForCausalLM")
        #expect(config.config.format == "safetensors")
        #expect(config.config.paramSize == "7.62b")
        #expect(config.config.precision == "float16")
        #expect(config.config.quantization == "awq-int4")
        #expect(config.modelfs.type == "layers")
        #expect(config.modelfs.diffIds == (try Self.manifest().files.map(\.digest.description)))
    }

    @Test(
        arguments: [
            (999, "999"), (1_000, "1k"), (1_234, "1.23k"), (12_345, "12.3k"), (123_456, "123k"), (999_499, "999k"),
            (999_999, "1m"),
            (1_000_000, "1m"), (7_615_616_512, "7.62b"), (70_553_706_496, "70.6b"), (1_500_000_000_000, "1.5t"),
        ] as [(Int64, String)])
    func parameterCountsAreWrittenShort(_ count: Int64, _ text: String) {
        #expect(ModelPackArtifact.paramSizeText(count) == text)
    }
}

@Suite struct RunnableModelImageTests {
    @Test func everyPlatformHasAManifestOverTheOneLayer() throws {
        let layer = Digest.of(Array("layer".utf8))
        let image = RunnableModelImage(
            layer: layer, size: 10240, manifestDigest: Digest.of([1]), version: try VersionName("1"),
            createdAt: "2026-12-04T10:00:00.000Z")
        let index = try JSONDecoder().decode(OCIImageIndex.self, from: Data(image.index.bytes))
        #expect(index.mediaType == OCIMediaType.imageIndex)
        #expect(index.manifests.map(\.platform) == RunnableModelImage.platforms)
        #expect(index.manifests.map(\.digest) == image.manifests.map(\.digest.description))
        for (manifestDocument, config) in zip(image.manifests, image.configs) {
            let manifest = try JSONDecoder().decode(OCIImageManifest.self, from: Data(manifestDocument.bytes))
            #expect(manifest.config.digest == config.digest.description)
            #expect(manifest.layers == [OCIDescriptor(mediaType: OCIMediaType.layerTar, digest: layer, size: 10240)])
            let fields = try #require(try JSONSerialization.jsonObject(with: Data(config.bytes)) as? [String: Any])
            let rootfs = try #require(fields["rootfs"] as? [String: Any])
            #expect(rootfs["diff_ids"] as? [String] == [layer.description])
            #expect(fields["os"] as? String == "linux")
        }
        #expect(Set(image.configs.map(\.digest)).count == RunnableModelImage.platforms.count)
    }
}

@Suite struct OCITagsTests {
    static func variant(_ name: String) throws -> VariantSummary {
        VariantSummary(
            name: try VariantName(name), digest: Digest.of(Array(name.utf8)), format: .safetensors, size: 1,
            fileCount: 1, createdAt: "2026-12-04T10:00:00.000Z", createdBy: "test")
    }

    static func version(_ name: String, _ variants: [String], deprecated: Bool = false) throws -> VersionSummary {
        VersionSummary(
            name: try VersionName(name), createdAt: "2026-12-04T10:00:00.000Z", size: 1,
            variants: try variants.map(Self.variant), aliases: [],
            deprecation: deprecated ? Deprecation(at: "2026-12-04T10:00:00.000Z", by: "test") : nil)
    }

    @Test func versionsAliasesLatestAndVariantsAreTags() throws {
        let model = ModelDetail(
            name: try ModelName("org/m"), createdAt: "2026-12-04T10:00:00.000Z",
            versions: [
                try Self.version("3", ["default"], deprecated: true), try Self.version("2", ["default", "awq-int4"]),
                try Self.version("1", ["fp16"]), try Self.version("0", ["a", "b"]),
            ],
            aliases: [
                AliasTarget(name: try AliasName("prod"), version: try VersionName("1"), updatedAt: "", updatedBy: ""),
                AliasTarget(
                    name: try AliasName("canary"), version: try VersionName("2"), variant: try VariantName("awq-int4"),
                    updatedAt: "", updatedBy: ""),
            ])
        let tags = OCITags(model)
        func target(_ tag: String) -> String? { tags.targets[tag].map { "\($0.version)/\($0.variant)" } }
        #expect(target("3") == "3/default")
        #expect(target("2") == "2/default")
        #expect(target("2__awq-int4") == "2/awq-int4")
        #expect(target("1") == "1/fp16")
        #expect(target("0") == nil, "a version of several variants and no default names none of them")
        #expect(target("0__b") == "0/b")
        #expect(target("latest") == "2/default", "the newest version not deprecated")
        #expect(target("prod") == "1/fp16")
        #expect(target("canary") == "2/awq-int4")
        #expect(tags.sorted == tags.sorted.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
        #expect(tags.sorted.allSatisfy(OCITags.isValid))
    }

    @Test func anAliasWinsOverAVersionOfItsName() throws {
        let model = ModelDetail(
            name: try ModelName("m"), createdAt: "",
            versions: [try Self.version("v2", ["default"]), try Self.version("v1", ["default"])],
            aliases: [
                AliasTarget(name: try AliasName("v2"), version: try VersionName("v1"), updatedAt: "", updatedBy: "")
            ]
        )
        #expect(OCITags(model).targets["v2"]?.version.value == "v1")
    }

    @Test(arguments: ["1", "_x", "A.b-c_d", String(repeating: "a", count: 128)])
    func validTags(_ tag: String) { #expect(OCITags.isValid(tag)) }

    @Test(arguments: ["", ".x", "-x", "a:b", "a/b", "a+b", String(repeating: "a", count: 129)])
    func invalidTags(_ tag: String) { #expect(!OCITags.isValid(tag)) }
}

@Suite struct OCIMediaTypeTests {
    @Test(arguments: [
        OCIMediaType.modelManifest, "application/vnd.cncf.notary.signature", "text/plain",
        "a/" + String(repeating: "b", count: 127),
    ])
    func mediaTypes(_ text: String) { #expect(OCIMediaType.isValid(text)) }

    @Test(arguments: [
        "", "signature", "a/b/c", "/b", "a/", "-a/b", "a/b c", "a/b;charset=utf-8", "ä/b",
        "a/" + String(repeating: "b", count: 128),
    ])
    func notMediaTypes(_ text: String) { #expect(!OCIMediaType.isValid(text)) }
}
