-- The built-in orders table, for a shop with no orders table of its own: the
-- README's contract. refundd reads requests from it and writes outcomes back
-- with built-in statements, exactly as it serves a shop's own tables; its own
-- bookkeeping lives in its own schema, never here.
CREATE TABLE orders (
    id                  bigserial PRIMARY KEY,
    -- CTBC's LID-M: 1 to 19 of [A-Za-z0-9_] (checked by refundd, which fails a bad row with its reason)
    order_no            text NOT NULL UNIQUE,
    xid                 text,
    auth_code           text,
    -- integers in the units of the bank's amount string for the currency (NT$ with exponent 0)
    auth_amount         bigint,
    currency            text NOT NULL DEFAULT '901',
    status              text NOT NULL DEFAULT 'paid'
        CONSTRAINT orders_status_known
        CHECK (status IN ('paid', 'refund_requested', 'refunding', 'refunded', 'refund_failed')),
    -- null, or equal to auth_amount, means the full amount
    refund_amount       bigint,
    refund_requested_at timestamptz,
    refunded_at         timestamptz,
    refund_method       text,
    refunded_amount     bigint,
    refund_error        text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    -- which refund of the order is asked now: NULL for its first, then "2", "3"...
    -- (`refundd request` of an order refunded in part asks a further part)
    refund_id           text,
    -- the merchant the order was paid to ([ctbc.merchants.NAME]); NULL: the default one
    merchant            text
);
CREATE INDEX orders_requested ON orders (order_no) WHERE status = 'refund_requested';
COMMENT ON TABLE orders IS 'refundd built-in orders';
