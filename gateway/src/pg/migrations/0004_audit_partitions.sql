-- Version 4: the events (and the linked subjects that go with them) are partitioned
-- by month of the event's time, so that `gateway audit archive` can move whole old
-- months out of the live tables (see gateway/src/audit/postgres/archive.rs) while
-- the privacy officer's indexes stay the same shape. The rows written before are
-- copied into the new tables unchanged (same pos, same hashes); then the old tables
-- are dropped and the new ones take their names.
--
-- Partitions: `audit_events_YYYYMM` FOR VALUES FROM ('YYYY-MM') TO (next month), and
-- `audit_linked_subjects_YYYYMM` likewise. `time` is RFC 3339 UTC text
-- ("2026-12-06T04:25:42.123Z") in the "C" collation, so text order is time order and
-- every time of a month sorts between the month and the next ('2026-12' <=
-- '2026-12-06T…' < '2027-01'). There is no default partition: the writer creates the
-- months it needs (this month and the next when it takes a chain, and any other month
-- when an insert finds none), under the advisory lock `audit-partitions`.
--
-- What a partitioned table cannot guarantee, and what does instead:
-- - Unique keys must include the partition key, so `(chain_id, seq, time)` is the
--   primary key and (chain_id, seq) is unique only within a month. That a chain's
--   seq is unique and gap-free is held by its writer (one writer per chain, under
--   its session advisory lock `audit-chain:<id>`, numbering from the head read in
--   its transaction) and checked by `gateway audit verify`, whose walk of every chain
--   (archived months and live) fails at the first seq that is missing, repeated or
--   out of order.
-- - event_id is likewise unique per month; the writer refuses an event_id the live
--   table holds (a duplicate answer, `DuplicateEvent`) before inserting.
-- - PostgreSQL 15 refuses identity columns on partitioned tables: `pos` takes its
--   default from the sequence `audit_event_positions`, which carries on from the
--   rows copied here. Nothing else writes `pos`.

CREATE SEQUENCE audit_event_positions AS bigint;

CREATE TABLE audit_events_by_month (
    chain_id text NOT NULL,
    seq bigint NOT NULL CONSTRAINT audit_events_seq_check CHECK (seq > 0),
    pos bigint NOT NULL DEFAULT nextval('audit_event_positions'),
    event_id text NOT NULL,
    time text COLLATE "C" NOT NULL
        CONSTRAINT audit_events_time_check CHECK (time ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T'),
    request_id text NOT NULL,
    user_name text NOT NULL,
    township text,
    connector text,
    purpose text,
    subject_pseudonym text,
    status integer NOT NULL,
    body text NOT NULL,
    prev_hash text NOT NULL,
    hash text NOT NULL,
    PRIMARY KEY (chain_id, seq, time)
) PARTITION BY RANGE (time);

-- The other persons a lookup disclosed, with their event's time, so that each goes
-- with its event's month (and is archived with it).
CREATE TABLE audit_linked_subjects_by_month (
    pseudonym text NOT NULL,
    chain_id text NOT NULL,
    seq bigint NOT NULL,
    time text COLLATE "C" NOT NULL,
    PRIMARY KEY (pseudonym, chain_id, seq, time)
) PARTITION BY RANGE (time);

-- A partition for every month the rows written before fall in.
DO $$
DECLARE
    month text;
    next text;
BEGIN
    FOR month IN SELECT DISTINCT left(time, 7) FROM audit_events ORDER BY 1 LOOP
        next := to_char(to_date(month, 'YYYY-MM') + interval '1 month', 'YYYY-MM');
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF audit_events_by_month FOR VALUES FROM (%L) TO (%L)',
            'audit_events_' || replace(month, '-', ''), month, next);
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF audit_linked_subjects_by_month FOR VALUES FROM (%L) TO (%L)',
            'audit_linked_subjects_' || replace(month, '-', ''), month, next);
    END LOOP;
END
$$;

INSERT INTO audit_events_by_month (chain_id, seq, pos, event_id, time, request_id,
        user_name, township, connector, purpose, subject_pseudonym, status, body,
        prev_hash, hash)
    SELECT chain_id, seq, pos, event_id, time, request_id, user_name, township,
           connector, purpose, subject_pseudonym, status, body, prev_hash, hash
      FROM audit_events;
INSERT INTO audit_linked_subjects_by_month (pseudonym, chain_id, seq, time)
    SELECT l.pseudonym, l.chain_id, l.seq, e.time
      FROM audit_linked_subjects l
      JOIN audit_events e ON e.chain_id = l.chain_id AND e.seq = l.seq;
SELECT setval('audit_event_positions', coalesce(max(pos), 0) + 1, false)
  FROM audit_events_by_month;

DROP TABLE audit_linked_subjects;
DROP TABLE audit_events;
ALTER TABLE audit_events_by_month RENAME TO audit_events;
ALTER INDEX audit_events_by_month_pkey RENAME TO audit_events_pkey;
ALTER TABLE audit_linked_subjects_by_month RENAME TO audit_linked_subjects;
ALTER INDEX audit_linked_subjects_by_month_pkey RENAME TO audit_linked_subjects_pkey;
ALTER SEQUENCE audit_event_positions OWNED BY audit_events.pos;

-- The privacy officer's indexes, as in version 2 (each partition gets its own):
-- newest first by the events' own time (ties in `pos` order), with or without one of
-- these columns; `pos` names the paging cursor.
CREATE INDEX audit_events_pos ON audit_events (pos);
CREATE INDEX audit_events_event_id ON audit_events (event_id);
CREATE INDEX audit_events_time ON audit_events (time, pos);
CREATE INDEX audit_events_subject ON audit_events (subject_pseudonym, time, pos)
    WHERE subject_pseudonym IS NOT NULL;
CREATE INDEX audit_events_user ON audit_events (user_name, time, pos);
CREATE INDEX audit_events_township ON audit_events (township, time, pos);
CREATE INDEX audit_events_connector ON audit_events (connector, time, pos);
CREATE INDEX audit_events_purpose ON audit_events (purpose, time, pos);
CREATE INDEX audit_events_status ON audit_events (status, time, pos);

-- The months `gateway audit archive` detached: each month's events and linked
-- subjects are kept, read-only, in the tables named here (`audit_archive_YYYYMM`,
-- `audit_archive_linked_YYYYMM`), never dropped by the gateway; `gateway audit
-- verify` walks them with the live table and fails when one named here is gone.
CREATE TABLE audit_archived_months (
    month text PRIMARY KEY CHECK (month ~ '^[0-9]{4}-[0-9]{2}$'),
    events_table text NOT NULL UNIQUE,
    linked_table text NOT NULL UNIQUE,
    events bigint NOT NULL CHECK (events >= 0),
    archived_at timestamptz NOT NULL DEFAULT now()
);

-- What keeps an archived month read-only against mistakes (not against the tables'
-- owner, who can drop the trigger: the county checkpoints and `verify` catch that).
CREATE FUNCTION audit_archive_read_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'archived audit events are read-only (table %)', TG_TABLE_NAME;
END
$$;
