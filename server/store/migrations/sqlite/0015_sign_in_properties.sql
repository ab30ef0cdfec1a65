-- What each sign-in showed of where and how it came, for the history-based detections of
-- Identity Protection (atypical travel, unfamiliar properties) and the insights: the place
-- from the GeoIP database (coordinates in millionths of a degree), the network from the ASN
-- database, the browser family and system from the user agent, the device cookie's hash, and
-- the attempt's sign-in risk.
ALTER TABLE sign_in_log ADD COLUMN country TEXT;
ALTER TABLE sign_in_log ADD COLUMN city TEXT;
ALTER TABLE sign_in_log ADD COLUMN latitude_e6 INTEGER;
ALTER TABLE sign_in_log ADD COLUMN longitude_e6 INTEGER;
ALTER TABLE sign_in_log ADD COLUMN accuracy_km INTEGER;
ALTER TABLE sign_in_log ADD COLUMN asn INTEGER;
ALTER TABLE sign_in_log ADD COLUMN browser TEXT;
ALTER TABLE sign_in_log ADD COLUMN os TEXT;
ALTER TABLE sign_in_log ADD COLUMN device TEXT;
ALTER TABLE sign_in_log ADD COLUMN risk_level TEXT;
CREATE INDEX risk_detections_sign_in ON risk_detections (sign_in_id);
