-- pgtide demo schema: a tiny shop. Safe to run repeatedly.
CREATE TABLE IF NOT EXISTS countries (
    code text PRIMARY KEY,
    name text NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    id         bigint PRIMARY KEY,
    email      text NOT NULL UNIQUE,
    name       text NOT NULL,
    country    text NOT NULL REFERENCES countries (code),
    created_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS products (
    id          bigint PRIMARY KEY,
    name        text NOT NULL,
    category    text NOT NULL,
    price_cents integer NOT NULL CHECK (price_cents >= 0),
    stock       integer NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    id         bigint PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users (id),
    status     text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS order_items (
    order_id    bigint NOT NULL REFERENCES orders (id),
    product_id  bigint NOT NULL REFERENCES products (id),
    quantity    integer NOT NULL CHECK (quantity > 0),
    price_cents integer NOT NULL,
    PRIMARY KEY (order_id, product_id)
);
CREATE INDEX IF NOT EXISTS orders_user_id_idx ON orders (user_id);
CREATE INDEX IF NOT EXISTS order_items_product_id_idx ON order_items (product_id);

BEGIN;
TRUNCATE order_items, orders, products, users, countries;

INSERT INTO countries (code, name) VALUES
    ('US', 'United States'), ('CA', 'Canada'), ('MX', 'Mexico'), ('BR', 'Brazil'),
    ('GB', 'United Kingdom'), ('FR', 'France'), ('DE', 'Germany'), ('ES', 'Spain'),
    ('IT', 'Italy'), ('NL', 'Netherlands'), ('SE', 'Sweden'), ('PL', 'Poland'),
    ('IN', 'India'), ('JP', 'Japan'), ('KR', 'South Korea'), ('CN', 'China'),
    ('AU', 'Australia'), ('NZ', 'New Zealand'), ('ZA', 'South Africa'), ('NG', 'Nigeria');

INSERT INTO users (id, email, name, country, created_at)
SELECT g,
       'user' || g || '@example.com',
       'User ' || g,
       (ARRAY['US','CA','MX','BR','GB','FR','DE','ES','IT','NL',
              'SE','PL','IN','JP','KR','CN','AU','NZ','ZA','NG'])[1 + g % 20],
       timestamptz '2024-01-01 00:00:00+00' + g * interval '7 hours'
FROM generate_series(1, 300) AS g;

INSERT INTO products (id, name, category, price_cents, stock)
SELECT g,
       'Product ' || g,
       (ARRAY['books','games','garden','kitchen','music','tools','toys'])[1 + g % 7],
       199 + (g * 7919) % 20000,
       (g * 31) % 250
FROM generate_series(1, 200) AS g;

INSERT INTO orders (id, user_id, status, created_at)
SELECT g,
       1 + (g * 37) % 300,
       (ARRAY['pending','paid','shipped','delivered','cancelled'])[1 + g % 5],
       timestamptz '2024-03-01 00:00:00+00' + g * interval '53 minutes'
FROM generate_series(1, 500) AS g;

INSERT INTO order_items (order_id, product_id, quantity, price_cents)
SELECT o, p.id, 1 + (o + i) % 4, p.price_cents
FROM generate_series(1, 500) AS o
CROSS JOIN generate_series(1, 3) AS i
JOIN products p ON p.id = 1 + (o * 13 + i * 61) % 200;
COMMIT;

ANALYZE countries, users, products, orders, order_items;
