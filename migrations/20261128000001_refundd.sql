-- refundd's own tables, created in its schema (`database.schema`; the migration
-- runs with that schema first on the search path, so nothing here names it):
-- one record per order it was asked to refund (what the shop asked, attempts,
-- lease, step, unknown outcomes, settlement watch, write-back to the shop), the
-- append-only story of every order, and the record of each pass. Nothing here
-- touches the shop's tables.

CREATE TABLE refunds (
    id                  bigserial PRIMARY KEY,
    order_no            text NOT NULL UNIQUE,
    -- refund_requested, withdrawn (the shop stopped asking before anything was
    -- sent), refunding, refunded, refund_failed
    status              text NOT NULL DEFAULT 'refund_requested'
        CONSTRAINT refunds_status_known
        CHECK (status IN ('refund_requested', 'withdrawn', 'refunding', 'refunded', 'refund_failed')),
    -- the request as the shop's query last gave it, until the first money-moving intent
    xid                 text,
    auth_code           text,
    auth_amount         bigint,
    currency            text NOT NULL DEFAULT '901',
    refund_amount       bigint,
    -- why the shop's row cannot be worked as it is (an amount with a fraction, ...)
    bad_input           text,
    requested_at        timestamptz NOT NULL DEFAULT now(),
    -- an operator's `refundd retry`: worked even if the shop's query no longer lists it
    retried_by_operator boolean NOT NULL DEFAULT false,
    -- the shop asked again after refundd refunded the order (it is never refunded twice)
    requested_again_at  timestamptz,

    attempts            integer NOT NULL DEFAULT 0,
    next_attempt_at     timestamptz,
    lease_owner         uuid,
    lease_token         uuid,
    lease_expires_at    timestamptz,
    -- the amount being refunded, fixed when the first money-moving intent is committed
    claimed_amount      bigint,
    step                text,
    unknown_operation   text,
    unknown_since       timestamptz,
    last_error          text,

    refunded_at         timestamptz,
    refund_method       text,
    refunded_amount     bigint,
    refund_error        text,
    settlement          text,
    settled_at          timestamptz,
    watch_until         timestamptz,
    -- a write-back to the shop (refunded | refund_failed) still to be done, and why it failed
    writeback           text,
    writeback_error     text,
    -- shop.on_failed ran for the current failure: a new request from the shop reopens it
    shop_told_failed    boolean NOT NULL DEFAULT false,
    -- the transaction that last ended the work (refunded, refund_failed, withdrawn): a reading
    -- of the shop's requests counts against it only if it saw that transaction's effects
    decided_xid         xid8,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX refunds_due ON refunds (next_attempt_at NULLS FIRST, id)
    WHERE status IN ('refund_requested', 'refunding');
CREATE INDEX refunds_settlement_due ON refunds (next_attempt_at NULLS FIRST, id)
    WHERE status = 'refunded' AND settlement = 'pending';
CREATE INDEX refunds_writeback ON refunds (id) WHERE writeback IS NOT NULL;

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

-- One refund per order: refundd's record of a refund never goes back to the
-- queue (a refund failing at settlement may still become refund_failed).
CREATE FUNCTION refunds_guard() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF OLD.status = 'refunded' AND NEW.status IN ('refund_requested', 'refunding', 'withdrawn') THEN
        RAISE EXCEPTION 'order % was already refunded; an order is refunded once', OLD.order_no
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status
       AND NEW.status IN ('refunded', 'refund_failed', 'withdrawn') THEN
        NEW.decided_xid := pg_current_xact_id();
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END $$;

CREATE TRIGGER refunds_guard BEFORE UPDATE ON refunds
    FOR EACH ROW EXECUTE FUNCTION refunds_guard();

-- Every status change of refundd's record is part of the order's story.
CREATE FUNCTION refunds_status_event() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
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

CREATE TRIGGER refunds_status_event AFTER INSERT OR UPDATE ON refunds
    FOR EACH ROW EXECUTE FUNCTION refunds_status_event();

-- The story is append-only.
CREATE FUNCTION refund_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'refund_events is append-only';
END $$;

CREATE TRIGGER refund_events_append_only BEFORE UPDATE OR DELETE ON refund_events
    FOR EACH ROW EXECUTE FUNCTION refund_events_append_only();
