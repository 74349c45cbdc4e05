-- groupcached as a sidecar in front of PostgreSQL: the objects its loader reads.
--
-- The loader's query is `SELECT load_item($1)`. load_item returns the item's value, or NULL
-- (groupcached answers 404) when there is no such item, and logs every call in load_log, so
-- the database itself counts how many loads reached it:
--
--     psql "$GROUPCACHED_PG_DSN" -c 'SELECT count(*) FROM load_log'
--
-- The script is idempotent (run it again at will) and names no schema: its objects go to the
-- first schema of search_path, so it can be applied inside a schema of your own
-- (SET search_path TO myschema; \i schema.sql). load_item keeps the search_path it was created
-- with, so it finds its tables whatever the caller's search_path; the caller must still find
-- load_item itself (put the schema in the DSN's search_path, or qualify the name in the query).

CREATE TABLE IF NOT EXISTS items (
    k          text PRIMARY KEY,
    v          text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS load_log (
    id        bigserial PRIMARY KEY,
    k         text NOT NULL,
    found     boolean NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX IF NOT EXISTS load_log_k ON load_log (k);

CREATE OR REPLACE FUNCTION load_item(key text) RETURNS text
    LANGUAGE plpgsql
    VOLATILE
    SET search_path FROM CURRENT
AS $$
DECLARE
    value text;
BEGIN
    SELECT i.v INTO value FROM items AS i WHERE i.k = key;
    INSERT INTO load_log (k, found) VALUES (key, value IS NOT NULL);
    RETURN value;
END
$$;
