-- groupcached as a sidecar in front of PostgreSQL: the objects its loader reads, and the
-- trigger that tells the nodes which keys changed.
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

-- Invalidation: every node LISTENs on the channel its config.yaml names (listen_channel:
-- items_changed), and this trigger says which key changed. pg_notify runs inside the writing
-- transaction, but PostgreSQL delivers the notification only when that transaction commits
-- (never when it rolls back), so a node drops its copy once the new row is visible to the
-- load that follows. An UPDATE that changes k notifies both keys. INSERT notifies too: a key
-- asked for before it existed is remembered as not found (negative_ttl), and its insertion
-- drops that memory. The channel is the trigger's argument, so another copy of this schema can
-- use another channel. A payload must be shorter than 8000 bytes or pg_notify fails, and the
-- write with it: longer keys are skipped (no node accepts a key over max_key_bytes, 1KiB by
-- default, so none is cached).

CREATE OR REPLACE FUNCTION notify_item_change() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND octet_length(OLD.k) < 8000 THEN
        PERFORM pg_notify(TG_ARGV[0], OLD.k);
    END IF;
    IF (TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.k IS DISTINCT FROM OLD.k)) AND octet_length(NEW.k) < 8000 THEN
        PERFORM pg_notify(TG_ARGV[0], NEW.k);
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER items_notify
    AFTER INSERT OR UPDATE OR DELETE ON items
    FOR EACH ROW EXECUTE FUNCTION notify_item_change('items_changed');
