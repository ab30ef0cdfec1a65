-- The API scopes an administrator granted an application for its own calls (client
-- credentials), such as gatehouse.risk.read for the risk API: a JSON array of strings.
ALTER TABLE oauth_clients ADD COLUMN api_scopes TEXT NOT NULL DEFAULT '[]';
