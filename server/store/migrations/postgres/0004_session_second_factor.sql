-- Which second factor a session was completed with, so removing that factor ends it.
ALTER TABLE sessions ADD COLUMN second_factor_id TEXT;
