-- Every column of refundd's record that holds a word of a closed set takes
-- only the words of that set, as `refunds.status` always has: a misspelt word
-- in a statement is refused where it is written, not met later where it is
-- read. The sets are those of the code (`store::vocabulary`, the bank's
-- operations `ctbc::Operation`) and, for the outbox, the words its trigger and
-- the raising of needs_attention write. NULL stays allowed wherever it was.
-- The rows already here hold only these words (no other was ever written), so
-- each constraint is checked against them as it is added.

ALTER TABLE refunds
    ADD CONSTRAINT refunds_step_is_a_step
        CHECK (step IN ('capture_reversed', 'done')),
    -- only a money-moving call's outcome is ever unknown
    ADD CONSTRAINT refunds_unknown_operation_moves_money
        CHECK (unknown_operation IN ('reversal', 'capture_reversal', 'refund', 'refund_reversal')),
    ADD CONSTRAINT refunds_refund_method_is_a_method
        CHECK (refund_method IN ('reversal', 'capture_reversal+reversal', 'refund')),
    ADD CONSTRAINT refunds_settlement_is_a_settlement_state
        CHECK (settlement IN ('pending', 'settled', 'failed', 'unconfirmed')),
    -- the write-back still to be done is one of the two endings the shop is told
    ADD CONSTRAINT refunds_writeback_is_an_ending
        CHECK (writeback IN ('refunded', 'refund_failed'));

ALTER TABLE refund_events
    ADD CONSTRAINT refund_events_kind_is_a_kind
        CHECK (kind IN ('status', 'intent', 'outcome', 'note')),
    ADD CONSTRAINT refund_events_operation_is_an_operation
        CHECK (operation IN ('inquiry', 'reversal', 'capture_reversal', 'refund', 'refund_reversal')),
    -- what came of a call, or, in a note, what became of the request (withdrawn)
    ADD CONSTRAINT refund_events_outcome_is_an_outcome
        CHECK (outcome IN ('accepted', 'refused', 'ambiguous', 'unavailable', 'invalid',
                           'amount_mismatch', 'unknown_order', 'bad_answer', 'took_effect',
                           'did_not_take_effect', 'write_back_refused', 'not_sent', 'withdrawn')),
    ADD CONSTRAINT refund_events_from_status_is_a_status
        CHECK (from_status IN ('refund_requested', 'withdrawn', 'refunding', 'refunded', 'refund_failed')),
    ADD CONSTRAINT refund_events_to_status_is_a_status
        CHECK (to_status IN ('refund_requested', 'withdrawn', 'refunding', 'refunded', 'refund_failed'));

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
