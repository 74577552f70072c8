import Foundation
import Hummingbird
import ModelRegistryCore
import NIOCore

/// Who sent a request, as established by `AuthenticationMiddleware`.
enum Identity: Sendable {
    case anonymous
    case invalid
    case token(TokenRecord)

    var actor: String {
        switch self {
        case .token(let record): record.name.value
        case .anonymous, .invalid: "anonymous"
        }
    }
}

public struct RegistryRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    var identity: Identity = .anonymous
    /// The request's connection, whose handlers a download may hand a file to (`FileRegionBodies`).
    let channel: any Channel

    public init(source: Source) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// Manifests and small JSON bodies; blob bytes are streamed and never collected.
    public var maxUploadSize: Int { 64 << 20 }
}

extension RegistryRequestContext {
    /// A path parameter, percent-decoded (clients may send `sha256%3A…`); empty when absent.
    func pathParameter(_ name: String) -> String {
        let raw = parameters.get(name) ?? ""
        return raw.removingPercentEncoding ?? raw
    }
}
