-- The contract a shop writes to (orders), refundd's own bookkeeping on each
-- order, the append-only story of every order (refund_events) and the record
-- of each pass (refund_passes).

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

    -- refundd's bookkeeping: a shop never needs to write these.
    attempts            integer NOT NULL DEFAULT 0,
    next_attempt_at     timestamptz,
    lease_owner         uuid,
    lease_expires_at    timestamptz,
    -- the amount being refunded, copied when the order is claimed
    claimed_amount      bigint,
    -- the last step whose outcome is committed (e.g. capture_reversed)
    step                text,
    -- a money-moving call whose outcome is unknown, and since when
    unknown_operation   text,
    unknown_since       timestamptz,
    last_error          text,
    -- watch of a refund until the bank settles it: pending, settled, failed
    settlement          text,
    settled_at          timestamptz,
    watch_until         timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX orders_due ON orders (next_attempt_at NULLS FIRST, id)
    WHERE status IN ('refund_requested', 'refunding');
CREATE INDEX orders_settlement_due ON orders (next_attempt_at NULLS FIRST, id)
    WHERE status = 'refunded' AND settlement = 'pending';

CREATE TABLE refund_events (
    id          bigserial PRIMARY KEY,
    order_no    text NOT NULL,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- status | intent | outcome | note
    kind        text NOT NULL,
    operation   text,
    outcome     text,
    from_status text,
    to_status   text,
    amount      bigint,
    bank_state  text,
    resp_code   text,
    err_code    text,
    message     text,
    worker      uuid,
    elapsed_ms  integer
);
CREATE INDEX refund_events_order ON refund_events (order_no, id);

CREATE TABLE refund_passes (
    id          bigserial PRIMARY KEY,
    worker      uuid NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    -- completed | stopped | failed | blackout
    outcome     text,
    summary     jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX refund_passes_started ON refund_passes (started_at DESC);

-- One refund per order, and a fresh start for every new request.
CREATE FUNCTION orders_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status = 'refunded'
       AND NEW.status IN ('paid', 'refund_requested', 'refunding') THEN
        RAISE EXCEPTION 'order % was already refunded; an order is refunded once', OLD.order_no
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status = 'refund_requested'
       AND (TG_OP = 'INSERT' OR OLD.status IN ('paid', 'refund_failed')) THEN
        NEW.refund_requested_at := now();
        NEW.attempts := 0;
        NEW.next_attempt_at := NULL;
        NEW.lease_owner := NULL;
        NEW.lease_expires_at := NULL;
        NEW.claimed_amount := NULL;
        NEW.step := NULL;
        NEW.unknown_operation := NULL;
        NEW.unknown_since := NULL;
        NEW.last_error := NULL;
        NEW.refund_error := NULL;
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END $$;

CREATE TRIGGER orders_guard BEFORE INSERT OR UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION orders_guard();

-- Every status change is part of the order's story, whoever makes it.
CREATE FUNCTION orders_status_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM NEW.status THEN
        INSERT INTO refund_events (order_no, kind, from_status, to_status, amount, message, worker)
        VALUES (NEW.order_no, 'status',
                CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE OLD.status END,
                NEW.status,
                CASE WHEN NEW.status = 'refunded' THEN NEW.refunded_amount ELSE NEW.refund_amount END,
                CASE WHEN NEW.status = 'refund_failed' THEN NEW.refund_error
                     WHEN NEW.status = 'refunded' THEN NEW.refund_method END,
                CASE WHEN TG_OP = 'INSERT' THEN NEW.lease_owner
                     ELSE COALESCE(NEW.lease_owner, OLD.lease_owner) END);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER orders_status_event AFTER INSERT OR UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION orders_status_event();

-- The story is append-only.
CREATE FUNCTION refund_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'refund_events is append-only';
END $$;

CREATE TRIGGER refund_events_append_only BEFORE UPDATE OR DELETE ON refund_events
    FOR EACH ROW EXECUTE FUNCTION refund_events_append_only();
