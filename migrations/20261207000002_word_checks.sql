-- Every column of refundd's record that holds a word of a closed set takes
-- only the words of that set, as `refunds.status` always has: a misspelt word
-- in a statement is refused where it is written, not met later where it is
-- read. The sets are those of the code (`domain::words`, the bank's
-- operations `domain::bank::operation::Operation`) and, for the outbox, the
-- words its trigger and the raising of needs_attention write. NULL stays
-- allowed wherever it was. The rows already here hold only these words (no
-- other was ever written), so each constraint is checked against them as it
-- is added.
--
-- The columns of `refunds` and `refund_events`, written by every step of
-- every order, take a domain over text with the set as its CHECK: PostgreSQL
-- checks a domain only where a value is assigned to such a column, with the
-- constraint prepared once per session, where a table's CHECK is prepared and
-- tested on every statement that writes the row, whatever it changes (about a
-- sixth of the database's work per order at these volumes). The columns stay
-- text to everything that reads or binds them. The outbox and the passes,
-- written a few times per order at most, keep table CHECKs.

CREATE DOMAIN refund_step AS text
    CONSTRAINT refund_step_is_a_step CHECK (VALUE IN ('capture_reversed', 'done'));
-- only a money-moving call's outcome is ever unknown
CREATE DOMAIN money_operation AS text
    CONSTRAINT money_operation_moves_money
    CHECK (VALUE IN ('reversal', 'capture_reversal', 'refund', 'refund_reversal'));
CREATE DOMAIN refund_method AS text
    CONSTRAINT refund_method_is_a_method
    CHECK (VALUE IN ('reversal', 'capture_reversal+reversal', 'refund'));
CREATE DOMAIN settlement_state AS text
    CONSTRAINT settlement_state_is_a_settlement_state
    CHECK (VALUE IN ('pending', 'settled', 'failed', 'unconfirmed'));
-- the write-back still to be done is one of the two endings the shop is told
CREATE DOMAIN write_back_ending AS text
    CONSTRAINT write_back_ending_is_an_ending CHECK (VALUE IN ('refunded', 'refund_failed'));
CREATE DOMAIN event_kind AS text
    CONSTRAINT event_kind_is_a_kind CHECK (VALUE IN ('status', 'intent', 'outcome', 'note'));
CREATE DOMAIN bank_operation AS text
    CONSTRAINT bank_operation_is_an_operation
    CHECK (VALUE IN ('inquiry', 'reversal', 'capture_reversal', 'refund', 'refund_reversal'));
-- what came of a call, or, in a note, what became of the request (withdrawn)
CREATE DOMAIN call_outcome AS text
    CONSTRAINT call_outcome_is_an_outcome
    CHECK (VALUE IN ('accepted', 'refused', 'ambiguous', 'unavailable', 'invalid',
                     'amount_mismatch', 'unknown_order', 'bad_answer', 'took_effect',
                     'did_not_take_effect', 'write_back_refused', 'not_sent', 'withdrawn'));
CREATE DOMAIN refund_status AS text
    CONSTRAINT refund_status_is_a_status
    CHECK (VALUE IN ('refund_requested', 'withdrawn', 'refunding', 'refunded', 'refund_failed'));

-- The outbox's trigger names two of these columns in its WHEN: it is made
-- again, the same, around the change of their type.
DROP TRIGGER refunds_outbox ON refunds;

ALTER TABLE refunds
    ALTER COLUMN step TYPE refund_step,
    ALTER COLUMN unknown_operation TYPE money_operation,
    ALTER COLUMN refund_method TYPE refund_method,
    ALTER COLUMN settlement TYPE settlement_state,
    ALTER COLUMN writeback TYPE write_back_ending;

CREATE TRIGGER refunds_outbox AFTER UPDATE ON refunds
    FOR EACH ROW WHEN ((OLD.status IS DISTINCT FROM NEW.status
                        AND NEW.status IN ('refunded', 'refund_failed', 'withdrawn'))
                       OR OLD.settlement IS DISTINCT FROM NEW.settlement
                       OR (NEW.writeback IS NOT NULL AND OLD.writeback IS NULL))
    EXECUTE FUNCTION refunds_outbox();

ALTER TABLE refund_events
    ALTER COLUMN kind TYPE event_kind,
    ALTER COLUMN operation TYPE bank_operation,
    ALTER COLUMN outcome TYPE call_outcome,
    ALTER COLUMN from_status TYPE refund_status,
    ALTER COLUMN to_status TYPE refund_status;

ALTER TABLE refund_passes
    ADD CONSTRAINT refund_passes_outcome_is_a_pass_outcome
        CHECK (outcome IN ('completed', 'stopped', 'failed', 'blackout',
                           'settings_problem', 'bank_keys_wrong'));

ALTER TABLE outbox
    ADD CONSTRAINT outbox_type_is_an_event_type
        CHECK (type IN ('refund.succeeded', 'refund.settled', 'refund.failed',
                        'refund.withdrawn', 'refund.needs_attention')),
    -- why a refund.needs_attention was raised
    ADD CONSTRAINT outbox_cause_is_a_cause
        CHECK (cause IN ('not_settled', 'write_back_refused', 'outcome_unknown', 'held_in_batch'));
