-- A refund refundd made may be cancelled before the bank's batch
-- (`refundd cancel-refund`): its record ends `cancelled` (the money stays
-- with the shop), the shop is told through `shop.on_cancelled` (a write-back
-- still to be done may now be `cancelled`), and the event `refund.cancelled`
-- goes out. A cancelled refund is never worked again.

ALTER DOMAIN refund_status DROP CONSTRAINT refund_status_is_a_status;
ALTER DOMAIN refund_status ADD CONSTRAINT refund_status_is_a_status
    CHECK (VALUE IN ('refund_requested', 'withdrawn', 'refunding', 'refunded', 'refund_failed', 'cancelled'));

ALTER TABLE refunds DROP CONSTRAINT refunds_status_known;
ALTER TABLE refunds ADD CONSTRAINT refunds_status_known
    CHECK (status IN ('refund_requested', 'withdrawn', 'refunding', 'refunded', 'refund_failed', 'cancelled'));

ALTER DOMAIN write_back_ending DROP CONSTRAINT write_back_ending_is_an_ending;
ALTER DOMAIN write_back_ending ADD CONSTRAINT write_back_ending_is_an_ending
    CHECK (VALUE IN ('refunded', 'refund_failed', 'cancelled'));

ALTER TABLE outbox DROP CONSTRAINT outbox_type_is_an_event_type;
ALTER TABLE outbox ADD CONSTRAINT outbox_type_is_an_event_type
    CHECK (type IN ('refund.succeeded', 'refund.settled', 'refund.failed',
                    'refund.withdrawn', 'refund.needs_attention', 'refund.cancelled'));

-- The guard: a cancelled refund never goes back to the queue, and a
-- cancellation ends the work like the other endings.
CREATE OR REPLACE FUNCTION refunds_guard() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF OLD.status IN ('refunded', 'cancelled')
       AND NEW.status IN ('refund_requested', 'refunding', 'withdrawn') THEN
        RAISE EXCEPTION 'order % was already %; a refund is made once', OLD.order_no, OLD.status
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status
       AND NEW.status IN ('refunded', 'refund_failed', 'withdrawn', 'cancelled') THEN
        NEW.decided_xid := pg_current_xact_id();
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END $$;

DROP TRIGGER refunds_guard ON refunds;
CREATE TRIGGER refunds_guard BEFORE UPDATE ON refunds
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
                       AND (OLD.status IN ('refunded', 'cancelled')
                            OR NEW.status IN ('refunded', 'refund_failed', 'withdrawn', 'cancelled')))
    EXECUTE FUNCTION refunds_guard();

CREATE OR REPLACE FUNCTION refunds_outbox() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        CASE NEW.status
            WHEN 'refunded' THEN PERFORM outbox_append(NEW, 'refund.succeeded', NULL, NULL);
            WHEN 'refund_failed' THEN PERFORM outbox_append(NEW, 'refund.failed', NULL, NEW.refund_error);
            WHEN 'withdrawn' THEN PERFORM outbox_append(NEW, 'refund.withdrawn', NULL, NULL);
            WHEN 'cancelled' THEN PERFORM outbox_append(NEW, 'refund.cancelled', NULL, NEW.refund_error);
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

DROP TRIGGER refunds_outbox ON refunds;
CREATE TRIGGER refunds_outbox AFTER UPDATE ON refunds
    FOR EACH ROW WHEN ((OLD.status IS DISTINCT FROM NEW.status
                        AND NEW.status IN ('refunded', 'refund_failed', 'withdrawn', 'cancelled'))
                       OR OLD.settlement IS DISTINCT FROM NEW.settlement
                       OR (NEW.writeback IS NOT NULL AND OLD.writeback IS NULL))
    EXECUTE FUNCTION refunds_outbox();
