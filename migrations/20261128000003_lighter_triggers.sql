-- The triggers of refundd's record run only when what they watch changes: the
-- guard when the work ends or a refunded order's status would change, the
-- story's status event on any status change, the outbox when the work ends,
-- the settlement state changes or a write-back is newly refused. Intents and
-- steps, which change none of these, run no PL/pgSQL at all, and a claim only
-- its status event. `updated_at` is from now on the time the work last ended
-- (refunded, refund_failed, withdrawn), or the time of a change that the
-- guard refused.

DROP TRIGGER refunds_guard ON refunds;
CREATE TRIGGER refunds_guard BEFORE UPDATE ON refunds
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
                       AND (OLD.status = 'refunded' OR NEW.status IN ('refunded', 'refund_failed', 'withdrawn')))
    EXECUTE FUNCTION refunds_guard();

DROP TRIGGER refunds_status_event ON refunds;
CREATE TRIGGER refunds_status_event_new AFTER INSERT ON refunds
    FOR EACH ROW EXECUTE FUNCTION refunds_status_event();
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
