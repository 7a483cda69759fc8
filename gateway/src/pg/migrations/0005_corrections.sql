-- Version 5: townships' corrections of departments' values (数据纠错), as JSON, in
-- the order they were filed. What the citizen stated is in columns of its own, so
-- that retention overwrites it with NULL and keeps the body (ids, pseudonym, state,
-- answer). The same data as the SQLite registry's schema at its version 5.
CREATE TABLE corrections (
    id text PRIMARY KEY,
    body jsonb NOT NULL,
    stated_value text,
    note text,
    created_seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE
);
