import Foundation
import ModelRegistryCore

/// The web pages' sign-ins. Signing in with a modelreg token starts a session; the browser holds only the
/// session's random id in an `HttpOnly`, `SameSite=Strict` cookie (`Secure` over TLS), never the token. The
/// metadata store keeps the hash of that id, the token's hash (so a revoked token ends its sessions at their
/// next request) and each session's CSRF token, which every form carries back; every replica reads the same.
public struct SignInSessions: Sendable {
    public static let cookieName = "modelreg_session"
    /// The double-submitted token of the sign-in form, which has no session yet.
    public static let signInCookieName = "modelreg_sign_in"

    public let lifetime: Duration
    private let store: any WebSessionStore
    private let now: @Sendable () -> Date

    public init(
        store: any WebSessionStore, lifetime: Duration = .seconds(12 * 3600),
        now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.store = store
        self.lifetime = lifetime
        self.now = now
    }

    /// A new session for a token already checked; the value for the cookie and the session.
    public func start(tokenHash: String) async throws -> (cookie: String, session: WebSession) {
        let cookie = Self.randomToken()
        let moment = now()
        let session = WebSession(
            idHash: Self.key(cookie), tokenHash: tokenHash, csrfToken: Self.randomToken(),
            expiresAt: moment.addingTimeInterval(TimeInterval(lifetime.components.seconds)))
        try await store.createWebSession(session, now: moment)
        return (cookie, session)
    }

    /// The live session a cookie names; nil for none, an unknown one or one past its time.
    public func session(cookie: String?) async throws -> WebSession? {
        guard let cookie, !cookie.isEmpty else { return nil }
        return try await store.webSession(idHash: Self.key(cookie), now: now())
    }

    public func end(cookie: String?) async throws {
        guard let cookie else { return }
        try await store.deleteWebSession(idHash: Self.key(cookie))
    }

    /// Whether a form's CSRF token is the session's, compared in time that does not depend on where they differ.
    public static func matches(_ sent: String?, _ expected: String) -> Bool {
        guard let sent else { return false }
        let (a, b) = (Array(sent.utf8), Array(expected.utf8))
        guard a.count == b.count, !b.isEmpty else { return false }
        return zip(a, b).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }

    /// 256 random bits, URL-safe.
    public static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return bytes.map { String(format: "%02x", $0) }.joined()
    }

    /// A `Set-Cookie` value: the browser sends it back only to this registry's pages, never to scripts, and
    /// never with a request another site started. `maxAge` 0 removes it.
    public static func setCookie(_ name: String, _ value: String, maxAge: Int, secure: Bool) -> String {
        "\(name)=\(value); Path=/ui; Max-Age=\(maxAge); HttpOnly; SameSite=Strict" + (secure ? "; Secure" : "")
    }

    /// The value of one cookie in a `Cookie` header.
    public static func cookie(_ name: String, in header: String?) -> String? {
        guard let header else { return nil }
        for pair in header.split(separator: ";") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == name {
                return parts[1].trimmingCharacters(in: .whitespaces)
            }
        }
        return nil
    }

    /// What the store keeps of a cookie: its hash, which cannot be sent back as a cookie.
    private static func key(_ cookie: String) -> String { Digest.of(Array(cookie.utf8)).hex }
}
