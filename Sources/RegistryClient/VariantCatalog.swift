import Foundation
import ModelFormats
import ModelRegistryCore

/// One variant of a version with what its manifest says about the model, for `variants` and `pull --fit`.
public struct ListedVariant: Codable, Sendable {
    public var name: VariantName
    public var digest: Digest
    public var format: ModelFormat
    public var size: Int64
    public var quantization: Quantization?
    public var metadata: ModelMetadata?
    public var estimate: MemoryEstimate?
}

public struct VariantListing: Codable, Sendable {
    public var model: ModelName
    public var version: VersionName
    public var variants: [ListedVariant]
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
    /// unless `contextLength` is given).
    public func variants(
        _ name: ModelName, _ version: VersionName, contextLength: Int64? = nil, concurrency: Int64 = 1,
        kvCacheDtype: KVCacheDtype = .auto
    ) async throws -> VariantListing {
        let summary = try await self.version(name, version)
        let reference = ModelReference(name: name, target: .version(version))
        var listed: [ListedVariant] = []
        for variant in summary.variants {
            let manifest = try await resolve(reference, variant: variant.name).manifest
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
        return VariantListing(model: name, version: version, variants: listed)
    }

    /// The highest-precision variant of the release whose estimate fits `budget` bytes. A version or alias
    /// offers every variant of its version; a digest pins one, which is then only checked.
    public func fittingVariant(
        _ reference: ModelReference, budget: Int64, contextLength: Int64?, concurrency: Int64,
        kvCacheDtype: KVCacheDtype = .auto
    ) async throws -> FitDecision {
        let version: VersionName
        var candidates: [(VariantName, Manifest)]
        switch reference.target {
        case .version(let named):
            version = named
            candidates = try await variantManifests(reference.name, named)
        case .alias(let alias):
            guard let target = try await aliases(reference.name).first(where: { $0.name == alias }) else {
                throw RegistryError(.notFound, "alias '\(alias)' of model \(reference.name) not found")
            }
            version = target.version
            candidates = try await variantManifests(reference.name, target.version)
        case .digest, .model:
            let resolved = try await resolve(reference, variant: nil)
            version = resolved.version
            candidates = [(resolved.variant, resolved.manifest)]
        }
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

    private func variantManifests(_ name: ModelName, _ version: VersionName) async throws -> [(VariantName, Manifest)] {
        let reference = ModelReference(name: name, target: .version(version))
        var manifests: [(VariantName, Manifest)] = []
        for variant in try await self.version(name, version).variants {
            manifests.append((variant.name, try await resolve(reference, variant: variant.name).manifest))
        }
        return manifests
    }
}

extension ByteCount {
    /// `24GiB`, `80G` (binary), `16GB` (decimal), `512MiB`, `1.5TiB`, or a plain number of bytes.
    public static func parse(_ text: String) throws(RegistryError) -> Int64 {
        let units: [(String, Double)] = [
            ("TiB", 0x1p40), ("GiB", 0x1p30), ("MiB", 0x1p20), ("KiB", 0x1p10), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6),
            ("KB", 1e3), ("T", 0x1p40), ("G", 0x1p30), ("M", 0x1p20), ("K", 0x1p10), ("B", 1),
        ]
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let unit = units.first { trimmed.uppercased().hasSuffix($0.0.uppercased()) }
        let number = unit.map { String(trimmed.dropLast($0.0.count)).trimmingCharacters(in: .whitespaces) } ?? trimmed
        guard let value = Double(number), value.isFinite, value > 0, value * (unit?.1 ?? 1) < 0x1p62 else {
            throw RegistryError(
                .invalidRequest, "invalid size '\(text)': expected a number and a unit, such as 24GiB, 80G or 16GB")
        }
        return Int64(value * (unit?.1 ?? 1))
    }
}
