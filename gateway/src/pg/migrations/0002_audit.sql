-- Version 2: the audit log (one hash chain per replica, checkpoints per chain, county
-- checkpoints over every chain's head). The record format (canonical body, hash
-- chain, checkpoint text) is the embedded log's; see gateway/src/audit/mod.rs.
--
-- Not partitioned (yet): a partitioned table's primary and unique keys must include
-- the partition key, which would give up the database's guarantee that (chain_id,
-- seq) and event_id are unique; retention by partition is left for a later version.

-- Facts about the log as a whole: `checkpoint_key`, the public half (base64) of the
-- key every writer signs with, recorded by the first one, so that a replica given
-- another key refuses to start instead of signing with it.
CREATE TABLE audit_meta (
    name text PRIMARY KEY,
    value text NOT NULL
);

-- Every chain ever written: one per replica that held it. A replica holds its chain
-- with a session advisory lock (see audit/postgres), never with a row lock.
CREATE TABLE audit_chains (
    chain_id text PRIMARY KEY CHECK (chain_id ~ '^[0-9a-f]{32}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The events. `pos` is the order of insertion across all chains, which breaks ties
-- of `time` and names the privacy officer's paging cursor; `seq` numbers the events
-- of one chain from 1 without gaps. `time` is the event's own time as written in its
-- body (RFC 3339 UTC with milliseconds), so text order is time order.
CREATE TABLE audit_events (
    chain_id text NOT NULL,
    seq bigint NOT NULL CHECK (seq > 0),
    pos bigint GENERATED ALWAYS AS IDENTITY,
    event_id text NOT NULL,
    time text NOT NULL,
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
    PRIMARY KEY (chain_id, seq)
);
CREATE UNIQUE INDEX audit_events_pos ON audit_events (pos);
CREATE UNIQUE INDEX audit_events_event_id ON audit_events (event_id);
-- The privacy officer reads newest first by the events' own time (ties in `pos`
-- order), with or without one of these columns.
CREATE INDEX audit_events_time ON audit_events (time, pos);
CREATE INDEX audit_events_subject ON audit_events (subject_pseudonym, time, pos)
    WHERE subject_pseudonym IS NOT NULL;
CREATE INDEX audit_events_user ON audit_events (user_name, time, pos);
CREATE INDEX audit_events_township ON audit_events (township, time, pos);
CREATE INDEX audit_events_connector ON audit_events (connector, time, pos);
CREATE INDEX audit_events_purpose ON audit_events (purpose, time, pos);
CREATE INDEX audit_events_status ON audit_events (status, time, pos);

-- The other persons a lookup disclosed (a spouse, children, household members), so
-- that a search by citizen and the citizen's report find the event.
CREATE TABLE audit_linked_subjects (
    pseudonym text NOT NULL,
    chain_id text NOT NULL,
    seq bigint NOT NULL,
    PRIMARY KEY (pseudonym, chain_id, seq)
);

-- Signed heads of each chain (the embedded log's checkpoint text, v2).
CREATE TABLE audit_checkpoints (
    chain_id text NOT NULL,
    seq bigint NOT NULL CHECK (seq > 0),
    text text NOT NULL,
    PRIMARY KEY (chain_id, seq)
);

-- Signed texts naming every chain's head at once, so that a chain deleted whole, or
-- its tail, is detected.
CREATE TABLE audit_county_checkpoints (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    text text NOT NULL
);
