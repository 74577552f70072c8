import Foundation
import ModelRegistryCore
import Synchronization

/// The web pages' sign-ins. Signing in with a modelreg token starts a session; the browser holds only the
/// session's random id in an `HttpOnly`, `SameSite=Strict` cookie (`Secure` over TLS), never the token. The
/// server keeps the token's hash, so a revoked token ends its sessions at their next request, and each
/// session's CSRF token, which every form carries back.
///
/// Sessions live in this process: a restart or another replica asks to sign in again (the README's
/// "Web UI" section says so for several replicas).
public final class SignInSessions: Sendable {
    public static let cookieName = "modelreg_session"
    /// The double-submitted token of the sign-in form, which has no session yet.
    public static let signInCookieName = "modelreg_sign_in"

    public struct Session: Sendable, Equatable {
        /// The hash of the token signed in with, as the token store keys it.
        public let tokenHash: String
        /// Sent in every form of the session's pages and checked on every action.
        public let csrfToken: String
        public let expires: Date
    }

    public let lifetime: Duration
    private let limit: Int
    private let now: @Sendable () -> Date
    /// Keyed by the hash of the cookie's value: what the process holds cannot be replayed as a cookie.
    private let sessions = Mutex<[String: Session]>([:])

    public init(
        lifetime: Duration = .seconds(12 * 3600), limit: Int = 10_000, now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.lifetime = lifetime
        self.limit = limit
        self.now = now
    }

    /// A new session for a token already checked; the value for the cookie and the session.
    public func start(tokenHash: String) -> (cookie: String, session: Session) {
        let cookie = Self.randomToken()
        let session = Session(
            tokenHash: tokenHash, csrfToken: Self.randomToken(),
            expires: now().addingTimeInterval(TimeInterval(lifetime.components.seconds)))
        let moment = now()
        sessions.withLock { sessions in
            if sessions.count >= limit {
                sessions = sessions.filter { $0.value.expires > moment }
                // Still full: the oldest go first.
                while sessions.count >= limit, let oldest = sessions.min(by: { $0.value.expires < $1.value.expires }) {
                    sessions.removeValue(forKey: oldest.key)
                }
            }
            sessions[Self.key(cookie)] = session
        }
        return (cookie, session)
    }

    /// The live session a cookie names; nil for none, an unknown one or one past its time.
    public func session(cookie: String?) -> Session? {
        guard let cookie, !cookie.isEmpty else { return nil }
        let key = Self.key(cookie)
        let moment = now()
        return sessions.withLock { sessions in
            guard let session = sessions[key] else { return nil }
            guard session.expires > moment else {
                sessions.removeValue(forKey: key)
                return nil
            }
            return session
        }
    }

    public func end(cookie: String?) {
        guard let cookie else { return }
        _ = sessions.withLock { $0.removeValue(forKey: Self.key(cookie)) }
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

    private static func key(_ cookie: String) -> String { Digest.of(Array(cookie.utf8)).hex }
}
