import Foundation
import ModelFormats
import ModelRegistryCore
import NIOCore
import ServingPlan

/// One variant of a version with what its manifest says about the model, for `variants` and `pull --fit`.
public struct ListedVariant: Codable, Sendable {
    public var name: VariantName
    public var digest: Digest
    public var format: ModelFormat
    public var size: Int64
    public var quantization: Quantization?
    public var metadata: ModelMetadata?
    public var estimate: MemoryEstimate?
    /// With a GPU budget (`variants --fit`): whether the estimate fits it; nil for a variant without metadata.
    public var fits: Bool?
}

public struct VariantListing: Codable, Sendable {
    public var model: ModelName
    public var version: VersionName
    public var variants: [ListedVariant]
    /// With `--fit`: the budget, and the variant `pull --fit` would take (nil when none fits).
    public var budgetBytes: Int64?
    public var chosen: VariantName?
}

/// Why `pull --fit` chose a variant: every candidate's need, highest precision first.
public struct FitDecision: Codable, Sendable {
    public var model: ModelName
    public var version: VersionName
    public var budgetBytes: Int64
    public var chosen: VariantName
    public var needs: [VariantFit.Need]
}

extension RegistryConnection {
    /// Every variant of a version with its manifest and a memory estimate (at the model's own context
    /// unless `contextLength` is given); with a `budget`, which fit it and which `--fit` would choose.
    public func variants(
        _ name: ModelName, _ version: VersionName, contextLength: Int64? = nil, concurrency: Int64 = 1,
        kvCacheDtype: KVCacheDtype = .auto, budget: Int64? = nil
    ) async throws -> VariantListing {
        let summary = try await self.version(name, version)
        let reference = ModelReference(name: name, target: .version(version))
        var listed: [ListedVariant] = []
        var candidates: [(VariantName, Manifest)] = []
        for variant in summary.variants {
            let manifest = try await resolve(reference, variant: variant.name).manifest
            candidates.append((variant.name, manifest))
            listed.append(
                ListedVariant(
                    name: variant.name, digest: variant.digest, format: manifest.format, size: manifest.totalSize,
                    quantization: manifest.quantization, metadata: manifest.metadata,
                    estimate: manifest.metadata.map {
                        MemoryEstimate(
                            metadata: $0, contextLength: contextLength, concurrency: concurrency,
                            kvCacheDtype: kvCacheDtype)
                    }
                ))
        }
        var listing = VariantListing(model: name, version: version, variants: listed)
        if let budget {
            let (chosen, needs) = VariantFit.choose(
                candidates, budget: budget, contextLength: contextLength, concurrency: concurrency,
                kvCacheDtype: kvCacheDtype)
            for index in listing.variants.indices where listing.variants[index].metadata != nil {
                listing.variants[index].fits = needs.first { $0.variant == listing.variants[index].name }?.fits
            }
            listing.budgetBytes = budget
            listing.chosen = chosen
        }
        return listing
    }

    /// The highest-precision variant of the release whose estimate fits `budget` bytes. A version or alias
    /// offers every variant of its version; a digest pins one, which is then only checked.
    public func fittingVariant(
        _ reference: ModelReference, budget: Int64, contextLength: Int64?, concurrency: Int64,
        kvCacheDtype: KVCacheDtype = .auto
    ) async throws -> FitDecision {
        let (version, candidates) = try await releaseCandidates(reference)
        let (chosen, needs) = VariantFit.choose(
            candidates, budget: budget, contextLength: contextLength, concurrency: concurrency,
            kvCacheDtype: kvCacheDtype
        )
        guard let chosen else {
            throw RegistryError(
                .notFound,
                "no variant of \(reference.name):\(version) fits in \(ByteCount.format(budget)): \(Presentation.needs(needs, budget: budget)); "
                    + "choose a smaller context (--context) or concurrency, or a larger --fit"
            )
        }
        return FitDecision(model: reference.name, version: version, budgetBytes: budget, chosen: chosen, needs: needs)
    }

    /// The serving plan of the release's best variant for `budget`'s GPUs (`modelreg plan`); the variants offered
    /// are those of `fittingVariant`.
    public func servingPlan(_ reference: ModelReference, budget: GPUBudget, request: ServingRequest) async throws
        -> ServingPlan
    {
        let (version, candidates) = try await releaseCandidates(reference)
        let plan = try ServingPlanner.plan(
            model: reference.name, version: version, candidates: candidates, budget: budget, request: request)
        guard let manifest = candidates.first(where: { $0.0 == plan.variant })?.1,
            let profile = try await servingProfile(of: manifest)
        else { return plan }
        return plan.including(profile)
    }

    /// The variant's serving profile (`modelreg-serving.json`), downloaded, checked against its digest and read
    /// as at push; nil when it has none.
    public func servingProfile(of manifest: Manifest) async throws -> ServingProfile? {
        guard let file = manifest.files.first(where: { $0.path.value == ServingProfile.fileName }) else { return nil }
        let get = request(.GET, "/v1/blobs/\(file.digest)")
        let body = Array(
            buffer: try await Self.collect(try await download(get), get, upTo: Int(ServingProfile.maxSize)))
        guard Digest.of(body) == file.digest else {
            throw RegistryError(
                .integrity, "\(ServingProfile.fileName) came back as other bytes than its digest \(file.digest)")
        }
        return try ServingProfile.parse(MemoryByteSource(body), path: file.path.value)
    }

    /// The version a release names and the variants it offers with their manifests: every variant of the version
    /// a version or alias names (the alias's own when it names one); the one a digest pins.
    private func releaseCandidates(_ reference: ModelReference) async throws -> (VersionName, [(VariantName, Manifest)])
    {
        switch reference.target {
        case .version(let named):
            return (named, try await variantManifests(reference.name, named))
        case .alias(let alias):
            guard let target = try await aliases(reference.name).first(where: { $0.name == alias }) else {
                throw RegistryError(.notFound, "alias '\(alias)' of model \(reference.name) not found")
            }
            // An alias that names a variant releases that one alone.
            let candidates = try await variantManifests(reference.name, target.version)
            return (target.version, candidates.filter { target.variant == nil || $0.0 == target.variant })
        case .digest, .model:
            let resolved = try await resolve(reference, variant: nil)
            return (resolved.version, [(resolved.variant, resolved.manifest)])
        }
    }

    private func variantManifests(_ name: ModelName, _ version: VersionName) async throws -> [(VariantName, Manifest)] {
        let reference = ModelReference(name: name, target: .version(version))
        var manifests: [(VariantName, Manifest)] = []
        for variant in try await self.version(name, version).variants {
            manifests.append((variant.name, try await resolve(reference, variant: variant.name).manifest))
        }
        return manifests
    }
}
