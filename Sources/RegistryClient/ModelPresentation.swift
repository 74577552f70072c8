import Foundation
import ModelFormats
import ModelRegistryCore
import ServingPlan

/// Text for what inspection found: `show`, `variants` and `pull --fit`.
extension Presentation {
    public static func parameters(_ count: Int64) -> String { ParameterCount.format(count) }

    public static func quantization(_ quantization: Quantization?) -> String { quantization?.summary ?? "-" }

    public static func estimate(_ estimate: MemoryEstimate) -> String {
        let cache =
            (estimate.kvCacheBytes.map { ByteCount.format($0) } ?? "unknown")
            + (estimate.kvCacheDtype == .auto ? "" : " in \(estimate.kvCacheDtype.rawValue)")
        return
            "\(ByteCount.format(estimate.totalBytes)) at context \(estimate.contextLength) × \(estimate.concurrency) "
            + "(weights \(ByteCount.format(estimate.weightBytes)) + KV cache \(cache) + overhead \(ByteCount.format(estimate.overheadBytes)))"
    }

    /// The model lines of `show` for one variant.
    public static func modelSummary(_ metadata: ModelMetadata) -> String {
        var lines: [String] = []
        if let architecture = metadata.architecture { lines.append("architecture: \(architecture)") }
        if let count = metadata.parameterCount { lines.append("parameters: \(parameters(count)) (\(count))") }
        let dtypes = metadata.dtypeSummary
        lines.append("weights: \(ByteCount.format(metadata.weightBytes))" + (dtypes.isEmpty ? "" : " (\(dtypes))"))
        let containers = Dictionary(grouping: metadata.weightFiles.values, by: { $0 }).map {
            "\($0.value.count) \($0.key)"
        }.sorted()
        if !containers.isEmpty { lines.append("weight files: \(containers.joined(separator: ", "))") }
        if let dtype = metadata.torchDtype { lines.append("torch dtype: \(dtype)") }
        let shape = [
            ("layers", metadata.layers), ("hidden", metadata.hiddenSize), ("heads", metadata.attentionHeads),
            ("KV heads", metadata.kvHeads), ("head dim", metadata.headDim),
        ]
        .compactMap { name, value in value.map { "\(name) \($0)" } }
        if !shape.isEmpty { lines.append("shape: \(shape.joined(separator: ", "))") }
        if let context = metadata.contextLength { lines.append("context: \(context) tokens") }
        if let perToken = metadata.kvCacheBytesPerToken {
            lines.append("KV cache: \(ByteCount.format(perToken)) a token")
        }
        lines.append("GPU memory: " + estimate(MemoryEstimate(metadata: metadata)))
        return lines.joined(separator: "\n")
    }

    public static func variants(_ listing: VariantListing) -> String {
        var out = "\(listing.model):\(listing.version)\n\n"
        let budget = listing.budgetBytes
        out += table(
            ["VARIANT", "FORMAT", "QUANTIZATION", "SIZE", "PARAMETERS", "MEMORY", "CONTEXT"]
                + (budget.map { ["FITS " + ByteCount.format($0)] } ?? []),
            listing.variants.map { variant in
                [
                    variant.name.value, variant.format.rawValue, quantization(variant.quantization),
                    ByteCount.format(variant.size),
                    variant.metadata?.parameterCount.map(parameters) ?? "-",
                    variant.estimate.map { ByteCount.format($0.totalBytes) } ?? "-",
                    variant.estimate.map { "\($0.contextLength) × \($0.concurrency)" } ?? "-",
                ]
                    + (budget == nil
                        ? []
                        : [
                            variant.fits.map {
                                $0 ? (variant.name == listing.chosen ? "yes (--fit takes it)" : "yes") : "no"
                            }
                                ?? "-"
                        ])
            }
        )
        if listing.variants.contains(where: { $0.metadata == nil }) {
            out += "\n\n- : pushed without inspection (--no-inspect), nothing to estimate from"
        }
        return out
    }

    /// `fp16 needs 17.7 GiB, awq-int4 needs 6.1 GiB, opaque: unknown`, each with as many digits as it takes
    /// to differ from the `budget` it is compared with.
    public static func needs(_ needs: [VariantFit.Need], budget: Int64) -> String {
        needs.map { need in
            need.estimate.map { "\(need.variant) needs \(ByteCount.format($0.totalBytes, apartFrom: budget))" }
                ?? "\(need.variant): unknown (pushed without inspection)"
        }.joined(separator: ", ")
    }

    public static func fit(_ decision: FitDecision) -> String {
        let chosen = decision.needs.first { $0.variant == decision.chosen }
        let skipped = decision.needs.prefix { $0.variant != decision.chosen }
        var text =
            "chose variant \(decision.chosen) of \(decision.model):\(decision.version) for \(ByteCount.format(decision.budgetBytes))"
        if let estimate = chosen?.estimate { text += ": needs " + self.estimate(estimate) }
        if !skipped.isEmpty {
            text += "; higher precision does not fit: \(needs(Array(skipped), budget: decision.budgetBytes))"
        }
        return text
    }
}

extension Presentation {
    public static func inspection(_ report: LocalInspectionReport) -> String {
        var lines = ["\(report.path): inspected in \(String(format: "%.1f", report.seconds * 1000)) ms"]
        if let quantization = report.quantization { lines.append("quantization: \(self.quantization(quantization))") }
        lines.append(
            report.metadata.map(modelSummary)
                ?? "no model files (safetensors, GGUF, PyTorch checkpoint, config.json) found")
        return lines.joined(separator: "\n")
    }
}

extension Presentation {
    /// The plan as `modelreg plan` prints it: the variant and size, vLLM's command line, then each argument's why
    /// and how every variant of the release fared.
    public static func plan(_ plan: ServingPlan) -> String {
        let gpus = plan.tensorParallelSize
        var lines = [
            "\(plan.model):\(plan.version) variant \(plan.variant) on \(gpus) × \(ByteCount.format(plan.budget.memoryBytes)) GPU\(gpus == 1 ? "" : "s"), context \(plan.maxModelLen)",
            "",
            "vllm serve " + plan.vllmArguments.map(shellWord).joined(separator: " "),
            "",
        ]
        if let profile = plan.profile {
            lines += ["serving profile (\(ServingProfile.fileName)):", servingProfile(profile), ""]
        }
        lines.append("why:")
        let width = plan.choices.map { $0.flag.count + 1 + ($0.value?.count ?? 0) }.max() ?? 0
        for choice in plan.choices {
            let argument = choice.flag + (choice.value.map { " " + $0 } ?? "")
            lines.append("  " + argument.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + choice.why)
        }
        lines += ["", "variants:"]
        for variant in plan.considered {
            let weights = variant.weightBytes.map { ByteCount.format($0) + " of weights" } ?? "no metadata"
            let fate: String
            if let fit = variant.fit, let context = variant.maxContext {
                let size = fit.tensorParallelSize
                fate =
                    "fits on \(size) GPU\(size == 1 ? "" : "s") with up to \(ServingPlanner.grouped(context)) tokens a sequence"
            } else {
                fate = variant.problem ?? "does not fit"
            }
            lines.append(
                "  \(variant.variant) (\(weights)): \(fate)\(variant.variant == plan.variant ? " (chosen)" : "")")
        }
        return lines.joined(separator: "\n")
    }

    /// A word as a POSIX shell reads it back: quoted only when it must be.
    static func shellWord(_ word: String) -> String {
        let plain = word.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_./=:@,+".contains($0)) }
        return plain && !word.isEmpty ? word : "'" + word.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }
}
