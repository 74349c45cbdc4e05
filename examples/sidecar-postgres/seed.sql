-- Demo rows for schema.sql's items table. Idempotent: rerunning resets these rows' values
-- and leaves other rows alone. Apply after schema.sql, with the same search_path.

INSERT INTO items (k, v) VALUES
    ('hello',         'hello from PostgreSQL'),
    ('greetings/fr',  'bonjour depuis PostgreSQL'),
    ('config.json',   '{"feature_x": true, "max_items": 50}'),
    ('with space',    'keys are any bytes; escape them in the URL')
ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v, updated_at = now();

-- item-0001 .. item-1000, for load tests.
INSERT INTO items (k, v)
SELECT format('item-%s', lpad(n::text, 4, '0')),
       format('{"id": %s, "name": "item %s", "price_cents": %s}', n, n, 100 + n * 7 % 900)
FROM generate_series(1, 1000) AS n
ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v, updated_at = now();
