import Foundation
import ModelRegistryCore
import PostgresNIO

/// The web pages' sessions, in `web_sessions`: any replica answers a page of a session another started.
extension PostgresMetadataStore {
    public func createWebSession(_ session: WebSession, now: Date) async throws {
        _ = try await writing { connection in
            try await connection.query(
                "DELETE FROM web_sessions WHERE expires_at < \(Timestamp.format(now))", logger: self.logger)
            try await connection.query(
                """
                INSERT INTO web_sessions (id_hash, token_hash, csrf_token, expires_at)
                VALUES (\(session.idHash), \(session.tokenHash), \(session.csrfToken),
                        \(Timestamp.format(session.expiresAt)))
                """, logger: self.logger)
        }
    }

    public func webSession(idHash: String, now: Date) async throws -> WebSession? {
        let row = try await reading { connection in
            try await connection.rows(
                """
                SELECT token_hash, csrf_token, expires_at FROM web_sessions
                WHERE id_hash = \(idHash) AND expires_at >= \(Timestamp.format(now))
                """, (String, String, String).self, logger: self.logger
            ).first
        }
        guard let (tokenHash, csrfToken, expiresAt) = row else { return nil }
        return WebSession(
            idHash: idHash, tokenHash: tokenHash, csrfToken: csrfToken, expiresAt: try Timestamp.parse(expiresAt))
    }

    public func deleteWebSession(idHash: String) async throws {
        _ = try await writing { connection in
            try await connection.query("DELETE FROM web_sessions WHERE id_hash = \(idHash)", logger: self.logger)
        }
    }
}
