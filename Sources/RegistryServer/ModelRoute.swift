import CacheImage
import Foundation
import HTTPTypes
import ModelRegistryCore

/// The resources under `/v1/models/`, parsed from the path segments after it. A model name has one or two
/// segments; the second is part of the name unless it is one of the reserved sub-resource words, which
/// `ModelName` refuses as name segments for exactly this reason.
enum ModelRoute: Hashable {
    case model(ModelName)
    case versions(ModelName)
    case version(ModelName, VersionName)
    case variant(ModelName, VersionName, VariantName)
    case manifest(ModelReference)
    case aliases(ModelName)
    case alias(ModelName, AliasName)
    case aliasHistory(ModelName, AliasName)
    case aliasPromotion(ModelName, AliasName)
    case aliasRollback(ModelName, AliasName)
    case deprecation(ModelName, VersionName)
    case images(ModelName, Digest)
    case image(ModelName, Digest, CacheImageLayout)

    init(segments raw: [Substring]) throws(RegistryError) {
        // Foundation's decoding is slow on Linux, and most paths have nothing to decode: every request pays this.
        let segments = raw.map { $0.contains(Character("%")) ? ($0.removingPercentEncoding ?? String($0)) : String($0) }
        guard !segments.isEmpty else { throw Self.unknown(segments) }
        var nameLength = 1
        if segments.count > 1, !ModelName.reservedSegments.contains(segments[1]) { nameLength = 2 }
        // An encoded slash must not turn one segment into two parts of a name.
        if let segment = segments.prefix(nameLength).first(where: { $0.contains(Character("/")) }) {
            throw RegistryError(
                .invalidName, "invalid model name part '\(segment.prefix(140))': '/' separates the parts of a name")
        }
        let name = try ModelName(segments.prefix(nameLength).joined(separator: "/"))
        let rest = Array(segments.dropFirst(nameLength))
        switch rest.count {
        case 0:
            self = .model(name)
        case 1 where rest[0] == "versions":
            self = .versions(name)
        case 1 where rest[0] == "aliases":
            self = .aliases(name)
        case 2 where rest[0] == "versions":
            self = .version(name, try VersionName(rest[1]))
        case 2 where rest[0] == "aliases":
            self = .alias(name, try AliasName(rest[1]))
        case 2 where rest[0] == "manifests":
            guard rest[1].hasPrefix(":") || rest[1].hasPrefix("@") else {
                throw RegistryError(
                    .invalidReference,
                    "invalid reference '\(rest[1].prefix(140))': expected :VERSION, @ALIAS or @sha256:<digest>")
            }
            self = .manifest(try ModelReference.release(name.value + rest[1]))
        case 3 where rest[0] == "aliases" && rest[2] == "history":
            self = .aliasHistory(name, try AliasName(rest[1]))
        case 3 where rest[0] == "aliases" && rest[2] == "promote":
            self = .aliasPromotion(name, try AliasName(rest[1]))
        case 3 where rest[0] == "aliases" && rest[2] == "rollback":
            self = .aliasRollback(name, try AliasName(rest[1]))
        case 3 where rest[0] == "versions" && rest[2] == "deprecate":
            self = .deprecation(name, try VersionName(rest[1]))
        case 2 where rest[0] == "images":
            self = .images(name, try Digest(parsing: rest[1]))
        case 3 where rest[0] == "images":
            guard let layout = CacheImageLayout(rawValue: rest[2]) else {
                throw RegistryError(
                    .invalidRequest,
                    "unknown image layout '\(rest[2].prefix(40))': use \(CacheImageLayout.allCases.map(\.rawValue).joined(separator: " or "))"
                )
            }
            self = .image(name, try Digest(parsing: rest[1]), layout)
        case 4 where rest[0] == "versions" && rest[2] == "variants":
            self = .variant(name, try VersionName(rest[1]), try VariantName(rest[3]))
        default:
            throw Self.unknown(segments)
        }
    }

    /// The model the resource belongs to.
    var model: ModelName {
        switch self {
        case .model(let name), .versions(let name), .aliases(let name), .version(let name, _), .variant(let name, _, _),
            .alias(let name, _), .aliasHistory(let name, _), .aliasPromotion(let name, _), .aliasRollback(let name, _),
            .deprecation(let name, _), .images(let name, _), .image(let name, _, _):
            name
        case .manifest(let reference):
            reference.name
        }
    }

    /// The methods the resource answers; any other gets 405 with these in `Allow`.
    var methods: [HTTPRequest.Method] {
        switch self {
        case .model, .versions, .aliases, .manifest, .aliasHistory, .images, .image: [.get, .head]
        case .version: [.get, .head, .delete]
        case .variant, .alias: [.get, .head, .put]
        case .aliasPromotion, .aliasRollback, .deprecation: [.post]
        }
    }

    /// The resource's path with its parameters named, as metrics label it: one label a kind of resource,
    /// whatever the model, and whether its name has one part or two.
    var template: String {
        let tail =
            switch self {
            case .model: ""
            case .versions: "/versions"
            case .version: "/versions/{version}"
            case .variant: "/versions/{version}/variants/{variant}"
            case .deprecation: "/versions/{version}/deprecate"
            case .manifest: "/manifests/{reference}"
            case .aliases: "/aliases"
            case .alias: "/aliases/{alias}"
            case .aliasHistory: "/aliases/{alias}/history"
            case .aliasPromotion: "/aliases/{alias}/promote"
            case .aliasRollback: "/aliases/{alias}/rollback"
            case .images: "/images/{digest}"
            case .image: "/images/{digest}/{layout}"
            }
        return "/v1/models/{name}" + tail
    }

    private static func unknown(_ segments: [String]) -> RegistryError {
        RegistryError(.notFound, "no such route: /v1/models/\(segments.joined(separator: "/").prefix(300))")
    }
}
