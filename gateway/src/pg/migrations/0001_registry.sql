-- Version 1: the registry (connectors and their versions, applied policy and purpose
-- files, grants, access requests, and the revision every commit advances). The same
-- data as the SQLite registry's schema at its version 4; JSON bodies are jsonb.

-- Every version of every connector, kept for the record. `review` is NULL when the
-- version needed no classification review; `activated_at` is NULL for a draft that
-- never served.
CREATE TABLE connector_versions (
    id text NOT NULL,
    version bigint NOT NULL CHECK (version BETWEEN 1 AND 4294967295),
    department text NOT NULL,
    definition text NOT NULL,
    schemas jsonb NOT NULL,
    origin jsonb NOT NULL,
    created_at text NOT NULL,
    created_by text NOT NULL,
    review jsonb,
    activated_at text,
    PRIMARY KEY (id, version)
);

-- The registered connectors: the version in force and whether it serves.
CREATE TABLE connectors (
    id text PRIMARY KEY,
    current_version bigint NOT NULL,
    enabled boolean NOT NULL,
    FOREIGN KEY (id, current_version) REFERENCES connector_versions (id, version)
);

-- Files applied with `gateway apply`, by path.
CREATE TABLE policy_files (path text PRIMARY KEY, text text NOT NULL);
CREATE TABLE purpose_files (path text PRIMARY KEY, text text NOT NULL);

-- Grants made through the API and access requests, as JSON, in the order they were
-- made (commits are serialized on the revision row, so `created_seq` is that order).
CREATE TABLE grants (
    id text PRIMARY KEY,
    body jsonb NOT NULL,
    created_seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE
);
CREATE TABLE access_requests (
    id text PRIMARY KEY,
    body jsonb NOT NULL,
    created_seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE
);

-- The revision: one row, locked by every commit (`SELECT … FOR UPDATE`), so commits
-- from several replicas serialize and a stale one is refused.
CREATE TABLE registry_revision (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    revision bigint NOT NULL CHECK (revision >= 0)
);
INSERT INTO registry_revision (revision) VALUES (0);
