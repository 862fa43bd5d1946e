-- The outbox: every outcome that matters to someone, appended by the same
-- transaction as the change it describes (no event without its change, no
-- change without its event), then delivered to a webhook and announced to the
-- shop's own code with NOTIFY on the channel `refundd`, also in that
-- transaction. The shop's code reads it through the view `events`.

CREATE TABLE outbox (
    seq             bigserial PRIMARY KEY,
    id              uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    order_no        text NOT NULL,
    -- refund.succeeded | refund.settled | refund.failed | refund.withdrawn | refund.needs_attention
    type            text NOT NULL,
    -- for refund.needs_attention: why; raised once per cause and order
    cause           text,
    occurred_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    body            jsonb NOT NULL,
    -- delivery to the webhook
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    dead_at         timestamptz,
    last_error      text
);
CREATE UNIQUE INDEX outbox_once_per_cause ON outbox (order_no, type, cause) WHERE cause IS NOT NULL;
CREATE INDEX outbox_undelivered ON outbox (next_attempt_at, seq) WHERE delivered_at IS NULL AND dead_at IS NULL;
CREATE INDEX outbox_order ON outbox (order_no, seq);

-- Appends one event for `r` (and NOTIFYs it); a needs_attention event with a
-- cause already raised for the order is not raised again.
CREATE FUNCTION outbox_append(r refunds, kind text, why text, reason text) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    ev_id uuid := gen_random_uuid();
    ev_at timestamptz := clock_timestamp();
    last_bank refund_events;
BEGIN
    IF kind IN ('refund.failed', 'refund.needs_attention') THEN
        SELECT * INTO last_bank FROM refund_events
         WHERE order_no = r.order_no AND (bank_state IS NOT NULL OR resp_code IS NOT NULL)
         ORDER BY id DESC LIMIT 1;
    END IF;
    INSERT INTO outbox (id, order_no, type, cause, occurred_at, body)
    VALUES (ev_id, r.order_no, kind, why, ev_at,
            jsonb_strip_nulls(jsonb_build_object(
                'id', ev_id,
                'type', kind,
                'order_no', r.order_no,
                'occurred_at', to_char(ev_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                'amount', CASE WHEN kind IN ('refund.succeeded', 'refund.settled') THEN r.refunded_amount
                               ELSE coalesce(r.claimed_amount, r.refund_amount, r.auth_amount) END,
                'method', r.refund_method,
                'reason', reason,
                'cause', why,
                'bank_state', last_bank.bank_state,
                'resp_code', last_bank.resp_code,
                'err_code', last_bank.err_code)))
    ON CONFLICT (order_no, type, cause) WHERE cause IS NOT NULL DO NOTHING;
    IF FOUND THEN
        PERFORM pg_notify('refundd', ev_id::text || ' ' || kind);
    END IF;
END $$;

-- The events of refundd's record, written by the change itself.
CREATE FUNCTION refunds_outbox() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        CASE NEW.status
            WHEN 'refunded' THEN PERFORM outbox_append(NEW, 'refund.succeeded', NULL, NULL);
            WHEN 'refund_failed' THEN PERFORM outbox_append(NEW, 'refund.failed', NULL, NEW.refund_error);
            WHEN 'withdrawn' THEN PERFORM outbox_append(NEW, 'refund.withdrawn', NULL, NULL);
            ELSE NULL;
        END CASE;
    END IF;
    IF NEW.settlement IS DISTINCT FROM OLD.settlement THEN
        IF NEW.settlement = 'settled' THEN
            PERFORM outbox_append(NEW, 'refund.settled', NULL, NULL);
        ELSIF NEW.settlement = 'unconfirmed' THEN
            PERFORM outbox_append(NEW, 'refund.needs_attention', 'not_settled',
                'the bank has not settled the refund within the settlement watch; check it with the bank');
        END IF;
    END IF;
    IF NEW.writeback IS NOT NULL AND OLD.writeback IS NULL THEN
        PERFORM outbox_append(NEW, 'refund.needs_attention', 'write_back_refused',
            'the shop''s database refused the outcome (' || coalesce(NEW.writeback_error, '') ||
            '); refundd retries it every pass');
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER refunds_outbox AFTER UPDATE ON refunds
    FOR EACH ROW EXECUTE FUNCTION refunds_outbox();

-- The outbox as the shop's code reads it.
CREATE VIEW events AS
SELECT id, type, order_no, occurred_at, body, delivered_at, dead_at
  FROM outbox ORDER BY seq;
