import Foundation
import ModelRegistryCore

/// Checks what a manifest claims about its files against the files themselves.
public enum ManifestVerification {
    /// The quantization a push declares must agree with what the files say (config.json, GGUF file type);
    /// files of nothing but full-precision floats cannot carry a declared quantization.
    public static func checkQuantization(_ declared: Quantization, against inspection: Inspection) throws(RegistryError)
    {
        if let actual = inspection.quantization {
            var conflicts: [String] = []
            if declared.method.lowercased() != actual.method.lowercased() {
                conflicts.append("method \(declared.method), not \(actual.method)")
            }
            if let bits = declared.bits, let actualBits = actual.bits, bits != actualBits {
                conflicts.append("\(bits) bits, not \(actualBits)")
            }
            if let group = declared.groupSize, let actualGroup = actual.groupSize, group != actualGroup {
                conflicts.append("group size \(group), not \(actualGroup)")
            }
            guard conflicts.isEmpty else {
                throw RegistryError(
                    .invalidManifest,
                    "the declared quantization contradicts the files, which are \(ModelInspector.describe(actual)): \(conflicts.joined(separator: ", "))"
                )
            }
        } else if let dtypes = ModelInspector.onlyFullPrecision(inspection) {
            throw RegistryError(
                .invalidManifest,
                "the declared quantization \(ModelInspector.describe(declared)) contradicts the files: every tensor is \(dtypes) and no config declares a quantization"
            )
        }
    }

    /// The quantization to publish: what was declared, completed by what the files say.
    public static func merge(
        declared: Quantization?, derivedFrom: VariantName?, inspection: Inspection?
    ) throws(RegistryError) -> Quantization? {
        if let declared, let inspection { try checkQuantization(declared, against: inspection) }
        guard var merged = declared ?? inspection?.quantization else {
            if let derivedFrom {
                throw RegistryError(
                    .invalidRequest,
                    "--derived-from \(derivedFrom) needs a quantization: pass --quantization METHOD, or push files that declare one"
                )
            }
            return nil
        }
        let found = inspection?.quantization
        if merged.bits == nil, found?.method == merged.method { merged.bits = found?.bits }
        if merged.groupSize == nil, found?.method == merged.method { merged.groupSize = found?.groupSize }
        merged.derivedFrom = derivedFrom ?? merged.derivedFrom
        return merged
    }

    /// What the server checks at publish. A manifest without metadata or quantization describes opaque files
    /// and is accepted as is; otherwise the files are inspected, must be well-formed, and must match.
    public static func verify(
        _ manifest: Manifest, open: (ManifestFile) throws(RegistryError) -> any ByteSource
    ) throws(RegistryError) {
        guard manifest.metadata != nil || manifest.quantization != nil else { return }
        let byPath = Dictionary(uniqueKeysWithValues: manifest.files.map { ($0.path, $0) })
        let inspection = try ModelInspector.inspect(paths: manifest.files.map(\.path)) { path throws(RegistryError) in
            try open(byPath[path]!)
        }
        if let declared = manifest.quantization { try checkQuantization(declared, against: inspection) }
        guard let declared = manifest.metadata else { return }
        guard let actual = inspection.metadata else {
            throw RegistryError(
                .invalidManifest, "the manifest declares model metadata but none of its files is a model file")
        }
        let differences = differingFields(declared, actual)
        guard differences.isEmpty else {
            throw RegistryError(
                .invalidManifest,
                "the manifest's metadata does not match its files: \(differences.joined(separator: "; "))")
        }
    }

    /// `field: declared X, files say Y` for every field that differs.
    static func differingFields(_ declared: ModelMetadata, _ actual: ModelMetadata) -> [String] {
        func fields(_ metadata: ModelMetadata) -> [String: String] {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            guard let data = try? encoder.encode(metadata),
                let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
            else { return [:] }
            return object.mapValues { value in
                (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed]))
                    .map { String(decoding: $0, as: UTF8.self) } ?? "\(value)"
            }
        }
        let left = fields(declared)
        let right = fields(actual)
        return Set(left.keys).union(right.keys).sorted().compactMap { key in
            left[key] == right[key]
                ? nil : "\(key): declared \(left[key] ?? "nothing"), files say \(right[key] ?? "nothing")"
        }
    }
}
