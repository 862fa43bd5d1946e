-- The triggers of refundd's record run only when what they watch changes: the
-- guard when the work ends or a refunded order's status would change, the
-- story's status event on any status change, the outbox when the work ends,
-- the settlement state changes or a write-back is newly refused. Intents and
-- steps, which change none of these, run no PL/pgSQL at all, and a claim only
-- its status event. `updated_at` is from now on the time the work last ended
-- (refunded, refund_failed, withdrawn), or the time of a change that the
-- guard refused. The outbox's event ids keep no unique index of their own.

DROP TRIGGER refunds_guard ON refunds;
CREATE TRIGGER refunds_guard BEFORE UPDATE ON refunds
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
                       AND (OLD.status = 'refunded' OR NEW.status IN ('refunded', 'refund_failed', 'withdrawn')))
    EXECUTE FUNCTION refunds_guard();

DROP TRIGGER refunds_status_event ON refunds;
CREATE TRIGGER refunds_status_event AFTER UPDATE ON refunds
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION refunds_status_event();

DROP TRIGGER refunds_outbox ON refunds;
CREATE TRIGGER refunds_outbox AFTER UPDATE ON refunds
    FOR EACH ROW WHEN ((OLD.status IS DISTINCT FROM NEW.status
                        AND NEW.status IN ('refunded', 'refund_failed', 'withdrawn'))
                       OR OLD.settlement IS DISTINCT FROM NEW.settlement
                       OR (NEW.writeback IS NOT NULL AND OLD.writeback IS NULL))
    EXECUTE FUNCTION refunds_outbox();

-- A new record's first status event is written once per statement for all the
-- records it inserts (a reading of the shop's requests inserts up to a
-- thousand at a time), not by a PL/pgSQL call per record.
CREATE FUNCTION refunds_status_events_new() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO refund_events (order_no, kind, from_status, to_status, amount, message, worker)
    SELECT n.order_no, 'status', NULL, n.status,
           CASE WHEN n.status = 'refunded' THEN n.refunded_amount ELSE n.refund_amount END,
           CASE WHEN n.status = 'refund_failed' THEN n.refund_error
                WHEN n.status = 'refunded' THEN n.refund_method END,
           n.lease_owner
      FROM new_records n ORDER BY n.id;
    RETURN NULL;
END $$;
CREATE TRIGGER refunds_status_events_new AFTER INSERT ON refunds
    REFERENCING NEW TABLE AS new_records
    FOR EACH STATEMENT EXECUTE FUNCTION refunds_status_events_new();

-- An event's id is a random UUID: unique without an index of its own to keep
-- up on every event (nothing looks an event up by it).
ALTER TABLE outbox DROP CONSTRAINT outbox_id_key;
