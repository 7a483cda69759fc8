-- Version 3: county checkpoints are numbered. `seq` counts them from 1 without gaps,
-- and from the v2 text on each one states its seq and names the previous one's, so
-- that a witness can keep them as it keeps a chain's checkpoints (one log per key:
-- each must extend the one before). Checkpoints written before this version keep
-- their v1 text; they are numbered here in the order they were written.
ALTER TABLE audit_county_checkpoints ADD COLUMN seq bigint;
UPDATE audit_county_checkpoints AS c
   SET seq = numbered.n
  FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM audit_county_checkpoints) AS numbered
 WHERE c.id = numbered.id;
ALTER TABLE audit_county_checkpoints ALTER COLUMN seq SET NOT NULL;
ALTER TABLE audit_county_checkpoints ADD CONSTRAINT audit_county_checkpoints_seq_positive CHECK (seq > 0);
CREATE UNIQUE INDEX audit_county_checkpoints_seq ON audit_county_checkpoints (seq);
