-- The network a grant's tokens were first issued to (the request that redeemed its code):
-- its autonomous system and country, for the anomalous-token detection at refresh, and when
-- a refresh from elsewhere was first reported (one detection per grant).
ALTER TABLE oauth_grants ADD COLUMN origin_asn BIGINT;
ALTER TABLE oauth_grants ADD COLUMN origin_country TEXT;
ALTER TABLE oauth_grants ADD COLUMN anomaly_at BIGINT;
