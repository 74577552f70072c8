-- Sign-ins to the web pages (/ui): the hash of each session's cookie, the hash of the token it signed in with,
-- its CSRF token and when it ends. Not exported, not backed up: a restored registry asks to sign in again.
CREATE TABLE web_sessions (
    id_hash     TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL,
    csrf_token  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
CREATE INDEX web_sessions_by_expiry ON web_sessions (expires_at);
