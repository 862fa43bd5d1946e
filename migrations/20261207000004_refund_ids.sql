-- Several refunds of one order. The shop's requests may give each refund an
-- id of its own (the optional column `refund_id`, a return number): rows with
-- one order number and different ids are separate refunds of that order,
-- each refundd's own record with its amount, status, story, events and
-- write-back. '' is the id of an order's only refund (a shop without the
-- column): the records already here, each its order's first refund, take it,
-- and nothing an operator set up changes.
ALTER TABLE refunds ADD COLUMN refund_id text NOT NULL DEFAULT '';
ALTER TABLE refunds DROP CONSTRAINT refunds_order_no_key;
ALTER TABLE refunds ADD CONSTRAINT refunds_one_record_per_refund UNIQUE (order_no, refund_id);
-- An order's refunds are worked one at a time (the claim takes a refund only
-- while no other of its order is under way, `queue_rules::turn_of_order`);
-- this keeps that true when two claims meet, whatever their snapshots saw:
-- never two money-moving calls for one order in flight. Its condition is
-- written so that no statement of the queue's ("status = 'refunding'")
-- implies it: the planner never reads records through it instead of their
-- key (`store::batch_plans`), it only keeps the rule.
CREATE UNIQUE INDEX refunds_one_under_way_per_order ON refunds (order_no)
    WHERE (status = 'refunding') IS TRUE;

-- Each event belongs to one refund's story; the order's story is all of them.
ALTER TABLE refund_events ADD COLUMN refund_id text NOT NULL DEFAULT '';
DROP INDEX refund_events_order;
CREATE INDEX refund_events_refund ON refund_events (order_no, refund_id, id);

-- Each event of the outbox concerns one refund; a cause is raised once per refund.
ALTER TABLE outbox ADD COLUMN refund_id text NOT NULL DEFAULT '';
DROP INDEX outbox_once_per_cause;
CREATE UNIQUE INDEX outbox_once_per_cause ON outbox (order_no, refund_id, type, cause)
    WHERE cause IS NOT NULL;

-- The status events name their refund.
CREATE OR REPLACE FUNCTION refunds_status_event() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM NEW.status THEN
        INSERT INTO refund_events (order_no, refund_id, kind, from_status, to_status, amount, message, worker)
        VALUES (NEW.order_no, NEW.refund_id, 'status',
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

CREATE OR REPLACE FUNCTION refunds_status_events_new() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO refund_events (order_no, refund_id, kind, from_status, to_status, amount, message, worker)
    SELECT n.order_no, n.refund_id, 'status', NULL, n.status,
           CASE WHEN n.status = 'refunded' THEN n.refunded_amount ELSE n.refund_amount END,
           CASE WHEN n.status = 'refund_failed' THEN n.refund_error
                WHEN n.status = 'refunded' THEN n.refund_method END,
           n.lease_owner
      FROM new_records n ORDER BY n.id;
    RETURN NULL;
END $$;

-- An event names its refund (`refund_id`, left out for an order's only
-- refund) and tells what the order has had back in all (`order_refunded`:
-- the sum of its refunds refundd has refunded).
CREATE OR REPLACE FUNCTION outbox_append(r refunds, kind text, why text, reason text) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    ev_id uuid := gen_random_uuid();
    ev_at timestamptz := clock_timestamp();
    last_bank refund_events;
    order_refunded bigint;
BEGIN
    IF kind IN ('refund.failed', 'refund.needs_attention') THEN
        SELECT * INTO last_bank FROM refund_events
         WHERE order_no = r.order_no AND refund_id = r.refund_id
           AND (bank_state IS NOT NULL OR resp_code IS NOT NULL)
         ORDER BY id DESC LIMIT 1;
    END IF;
    SELECT coalesce(sum(refunded_amount), 0) INTO order_refunded FROM refunds
     WHERE order_no = r.order_no AND status = 'refunded';
    INSERT INTO outbox (id, order_no, refund_id, type, cause, occurred_at, body)
    VALUES (ev_id, r.order_no, r.refund_id, kind, why, ev_at,
            jsonb_strip_nulls(jsonb_build_object(
                'id', ev_id,
                'type', kind,
                'order_no', r.order_no,
                'refund_id', nullif(r.refund_id, ''),
                'occurred_at', to_char(ev_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                'amount', CASE WHEN kind IN ('refund.succeeded', 'refund.settled') THEN r.refunded_amount
                               ELSE coalesce(r.claimed_amount, r.refund_amount, r.auth_amount) END,
                'order_refunded', order_refunded,
                'method', r.refund_method,
                'reason', reason,
                'cause', why,
                'bank_state', last_bank.bank_state,
                'resp_code', last_bank.resp_code,
                'err_code', last_bank.err_code)))
    ON CONFLICT (order_no, refund_id, type, cause) WHERE cause IS NOT NULL DO NOTHING;
    IF FOUND THEN
        PERFORM pg_notify('refundd', ev_id::text || ' ' || kind);
    END IF;
END $$;

-- The outbox as the shop's code reads it, each event with its refund.
CREATE OR REPLACE VIEW events AS
SELECT id, type, order_no, occurred_at, body, delivered_at, dead_at, refund_id
  FROM outbox ORDER BY seq;

-- Which of the shop's CTBC merchant ids the refund's order was paid to: the
-- name of a `[ctbc.merchants.NAME]` table, from the optional column
-- `merchant` of the shop's requests; NULL for the default merchant (the
-- `[ctbc]` table's own), which every record migrated here was.
ALTER TABLE refunds ADD COLUMN merchant text;

-- The queue's index gives the records in the order they fall due (no next
-- attempt first), one range: a claim reads the due records in that order
-- and stops at what it takes, checking each one's order's other refunds
-- (`queue_rules::turn_of_order`) on the way, rather than reading and
-- sorting every waiting record first.
DROP INDEX refunds_due;
CREATE INDEX refunds_due ON refunds ((coalesce(next_attempt_at, '-infinity'::timestamptz)), id)
    WHERE status IN ('refund_requested', 'refunding');
