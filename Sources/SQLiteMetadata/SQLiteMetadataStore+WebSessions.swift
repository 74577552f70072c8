import Foundation
import GRDB
import ModelRegistryCore

/// The web pages' sessions, in `web_sessions`. Written straight to the pool, not through `writing`: no kept
/// read depends on them.
extension SQLiteMetadataStore {
    public func createWebSession(_ session: WebSession, now: Date) async throws {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM web_sessions WHERE expires_at < ?", arguments: [Timestamp.format(now)])
            try db.execute(
                sql: "INSERT INTO web_sessions (id_hash, token_hash, csrf_token, expires_at) VALUES (?, ?, ?, ?)",
                arguments: [
                    session.idHash, session.tokenHash, session.csrfToken, Timestamp.format(session.expiresAt),
                ])
        }
    }

    public func webSession(idHash: String, now: Date) async throws -> WebSession? {
        let found = try await pool.read { db -> (tokenHash: String, csrfToken: String, expiresAt: String)? in
            try Row.fetchOne(
                db,
                sql: """
                    SELECT token_hash, csrf_token, expires_at FROM web_sessions WHERE id_hash = ? AND expires_at >= ?
                    """, arguments: [idHash, Timestamp.format(now)]
            ).map { ($0["token_hash"], $0["csrf_token"], $0["expires_at"]) }
        }
        guard let found else { return nil }
        return WebSession(
            idHash: idHash, tokenHash: found.tokenHash, csrfToken: found.csrfToken,
            expiresAt: try Timestamp.parse(found.expiresAt))
    }

    public func deleteWebSession(idHash: String) async throws {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM web_sessions WHERE id_hash = ?", arguments: [idHash])
        }
    }
}
