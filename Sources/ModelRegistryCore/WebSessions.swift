import Foundation

/// A sign-in to the web pages, as the metadata store keeps it: every replica behind a Service knows every
/// session. The store holds hashes only: the cookie's value and the token are never stored.
public struct WebSession: Sendable, Equatable {
    /// The hash of the cookie's value.
    public var idHash: String
    /// The hash of the token signed in with, as `TokenStore.token(hash:)` takes it: a revoked token ends
    /// its sessions.
    public var tokenHash: String
    /// Sent in every form of the session's pages and checked on every action.
    public var csrfToken: String
    public var expiresAt: Date

    public init(idHash: String, tokenHash: String, csrfToken: String, expiresAt: Date) {
        self.idHash = idHash
        self.tokenHash = tokenHash
        self.csrfToken = csrfToken
        self.expiresAt = expiresAt
    }
}

/// Where the web pages' sessions live. They are not part of an export or a backup: a restored registry
/// asks everyone to sign in again.
public protocol WebSessionStore: Sendable {
    /// Stores a new session, and removes those that ended before `now`.
    func createWebSession(_ session: WebSession, now: Date) async throws
    /// The session, while it lasts: nil when there is none or it ended before `now`.
    func webSession(idHash: String, now: Date) async throws -> WebSession?
    /// Ends a session (signing out); nothing happens for one that is gone.
    func deleteWebSession(idHash: String) async throws
}
